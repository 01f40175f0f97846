"""The model: a Llama-style decoder, its parts, and generation (the library's lowest layer
above device/fileio; it imports nothing from data, training, book or the command lines)."""

from .config import PRESETS, ModelConfig
from .generation import generate
from .transformer import Transformer, eval_mode, parameter_counts

__all__ = ["PRESETS", "ModelConfig", "Transformer", "eval_mode", "generate", "parameter_counts"]
