"""Rec-ID generation: relation-aware encoder, decoder with a history mixture, constrained beam search."""

from .beam import BeamResult, BeamStep, DecodingConfig, beam_search, sequence_log_probs
from .history import histories, split_histories
from .model import ITEM_EMBS, PES, GeneratorConfig, RecIDGenerator

__all__ = ["BeamResult", "BeamStep", "DecodingConfig", "GeneratorConfig", "ITEM_EMBS", "PES", "RecIDGenerator",
           "beam_search", "histories", "sequence_log_probs", "split_histories"]
