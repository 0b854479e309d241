"""The related systems as named presets of one run configuration: `train --system NAME`, `compare --systems ...`.

A system is a partial configuration tree (`config.resolve` reads it first; `--config` and `--set` then override
it), so every system trains, decodes, is evaluated and opens in the app through the same code as MMGRec. Their
histories are the user's training items as a set, as MMGRec's are: the papers' models are sequential, and our
split is random, so "the last item" does not exist here. Each preset below names the paper section it follows
and what differs.

mmgrec (MMGREC.md; `../shared/papers/mmgrec.txt`)
    Graph RQ-VAE codes with the popularity collision token, relation-aware attention (§4.3.2, Eq. 14-19), the
    output mixture, transition tables and co-occurrence evidence of `generator.model` (the last three are ours,
    not the paper's). The defaults of `RunConfig`.

tiger (Rajput et al., NeurIPS 2023, as MGR-LF and BBQRec describe it)
    An RQ-VAE on the item content (here: the concatenated, standardised modalities), a random collision token, a
    plain encoder-decoder with sinusoidal positions, no user-specific attention and no graph. History items are
    embedded by their Rec-ID tokens (the sum of their token embeddings, tied with the decoder), one softmax of the
    decoder state. Departures: a set history (see above); our small Transformer instead of T5; the same 3 x 128
    codes as MMGRec instead of 3 x 256.

mgr-ef (MGR-LF paper §3.1, `mgr-lf.txt`)
    Early fusion: one representation of all modalities, one Rec-ID. The paper fuses with a multimodal encoder
    (ImageBind); our modalities arrive as vectors, so early fusion is their concatenation before the RQ-VAE, and
    the system is TIGER's pipeline on all modalities. It is kept under its own name because its diagnostic differs:
    the AMI between its first-level tokens and those of each modality's own RQ-VAE (the paper's Table 1).

mgr-lf (MGR-LF §3.2)
    Late fusion: one RQ-VAE per modality, their codes concatenated into one Rec-ID (`tokenizers.late_fusion`), on
    TIGER's generator. Diagnostic: the AMI between the modalities' first-level tokens.

mgr-lf++ (MGR-LF §3.3)
    Late fusion with a separator token between the modalities' codes (the paper's special tokens s_i) and the
    contrastive modality-alignment pre-training: before the recommendation task, the generator learns to produce
    one modality's codes given the other's, for every ordered pair, the target codes generated alone as the
    paper's "Target" (`train.align_modalities`, `TrainingConfig.align_epochs`). Departure: the source codes enter
    our encoder as one position per token rather than as T5 text.

bbqrec (Li et al., BBQRec, `bbqrec.txt`)
    Behaviour-aligned and modality-specific encoders kept apart by the CLUB upper bound, one codebook shared by the
    ID and every modality, the sequence-to-item contrastive loss (tau 0.1) and the paper's weights
    (beta = gamma = 1, alpha = 0.25) in the tokenizer (`tokenizers.bbqrec`); in the generator, the
    similarity-reweighted attention of §4.2 (cosine of the quantized item vectors bucketed into K = 100, a learned
    bucket embedding multiplying the attention values, `generator.attention`). Departure: the paper's attention
    runs over every semantic-ID token of every history item; ours over one position per item (the sum of its
    tokens' embeddings), with the similarity of the two items' quantized vectors.
"""

from __future__ import annotations

# TIGER's generator, which the MGR systems build on: positions, no user terms, ID-token inputs, one softmax, and
# none of MMGRec's collaborative additions to the output.
_TIGER_GENERATOR = {"pe": "sinusoidal", "item_emb": "codes", "mixture": False, "transition": False,
                    "cooccurrence": False}

SYSTEMS: dict[str, dict] = {
    "mmgrec": {},
    "tiger": {"tokenizer": {"name": "rqvae", "collision": "random"}, "generator": _TIGER_GENERATOR},
    "mgr-ef": {"tokenizer": {"name": "rqvae", "collision": "random"}, "generator": _TIGER_GENERATOR},
    "mgr-lf": {"tokenizer": {"name": "late_fusion", "collision": "random"}, "generator": _TIGER_GENERATOR},
    "mgr-lf++": {"tokenizer": {"name": "late_fusion", "collision": "random", "separator": True},
                 "generator": _TIGER_GENERATOR, "training": {"align_epochs": 20}},
    "bbqrec": {"tokenizer": {"name": "bbqrec", "collision": "random"},
               "generator": {**_TIGER_GENERATOR, "sim_buckets": 100}},
}


def preset(name: str) -> dict:
    """The partial configuration tree of system `name` (a fresh copy), with `system` set to the name."""
    if name not in SYSTEMS:
        raise ValueError(f"system {name!r}: must be one of {', '.join(SYSTEMS)}")
    return {"system": name, **{k: dict(v) for k, v in SYSTEMS[name].items()}}


def with_preset(name: str, config: dict) -> dict:
    """`config` (a partial tree, e.g. from --config) laid over system `name`'s preset, section by section."""
    out = preset(name)
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
