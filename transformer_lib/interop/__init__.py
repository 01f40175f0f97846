"""Other formats in and out: Hugging Face ``transformers`` (hf) and llama2.c (llama2c).

``from transformer_lib.interop import from_hf, to_hf, from_llama2c`` works; ``transformers`` is
imported only when a Hugging Face function is called.
"""

from .hf import from_hf, from_hf_config, from_hf_state_dict, special_token_ids, to_hf, to_hf_config
from .llama2c import Llama2cFormatError, Llama2cHeader, from_llama2c, read_header

__all__ = ["Llama2cFormatError", "Llama2cHeader", "from_hf", "from_hf_config",
           "from_hf_state_dict", "from_llama2c", "read_header", "special_token_ids", "to_hf",
           "to_hf_config"]
