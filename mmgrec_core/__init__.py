"""mmgrec: multimodal generative recommendation (Graph RQ-VAE Rec-IDs + a relation-aware Transformer)."""

__version__ = "0.1.0"
