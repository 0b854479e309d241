"""Rec-ID generation: relation-aware encoder-decoder Transformer and constrained beam search."""

from .beam import BeamResult, BeamStep, beam_search
from .history import histories
from .model import ITEM_EMBS, PES, GeneratorConfig, RecIDGenerator

__all__ = ["BeamResult", "BeamStep", "GeneratorConfig", "ITEM_EMBS", "PES", "RecIDGenerator", "beam_search",
           "histories"]
