"""transformer_lib: a small, tested Llama-style transformer (the finished code of the book)."""

from .model.config import PRESETS, ModelConfig
from .model.generation import generate
from .model.transformer import Transformer, parameter_counts

# The original design's names, kept so its examples run unchanged.
SOTAConfig = ModelConfig
SOTATransformer = Transformer

__all__ = [
    "PRESETS",
    "ModelConfig",
    "SOTAConfig",
    "SOTATransformer",
    "Transformer",
    "generate",
    "parameter_counts",
]
__version__ = "0.1.0"
