# %% [markdown]
# # Solutions to chapter 2: Embeddings and RMSNorm
#
# The answers to the exercises of chapter 2, each followed by the same check call as in the
# chapter, which now prints `correct`. Exercises 3 and 4 are experiments: each is run here and
# its measured result stated beside the output.

# %%
import torch
from torch import nn

from transformer_lib import ModelConfig, Transformer, book, parameter_counts
from transformer_lib.book.exercises import ch02
from transformer_lib.book.pieces import keep
from transformer_lib.model.rmsnorm import RMSNorm


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last dimension (as in the chapter)."""
    return x.pow(2).mean(dim=-1).sqrt()

# %% [markdown]
# **Exercise 1.** Cast to float32 (a no-op for float32 input), take the mean of the squares
# over the last dimension with `keepdim=True` so that it broadcasts against `x`, add `eps`
# *inside* the root (`rsqrt` is one over the square root), cast the normalised vector back to
# `x`'s dtype, and multiply by the gain. Every step is a tensor operation, so autograd
# differentiates it.

# %%
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dimension. x: (..., D) float32, bfloat16 or float16; weight: (D,)
    of the same dtype; eps > 0. Returns (..., D) in x's dtype, computed in float32 inside."""
    x32 = x.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


# %%
ch02.exercise_1(rms_norm)

# %%
keep(rms_norm)

# %% [markdown]
# **Exercise 2.** Two norms per block and one before the output layer make 9 norms of width
# 128. An RMSNorm learns one gain per feature, 128 numbers; a LayerNorm learns a gain and a
# bias, 256.

# %%
layers, width = book.BOOK_MODEL["num_layers"], book.BOOK_MODEL["d_model"]
rms_norm_parameters = (2 * layers + 1) * width
layer_norm_parameters = (2 * layers + 1) * 2 * width
print(rms_norm_parameters, layer_norm_parameters)
book_config = ModelConfig(vocab_size=book.BOOK_VOCAB_SIZE, **book.BOOK_MODEL)
assert rms_norm_parameters == parameter_counts(Transformer(book_config))["norms"]

# %%
ch02.exercise_2(rms_norm_parameters, layer_norm_parameters)

# %% [markdown]
# **Exercise 3 (experiment).** We shift every feature by 5 and measure the largest change of
# each norm's output.

# %%
width = 64
torch.manual_seed(0)
x = torch.randn(8, width)
shift = 5.0
shift_rms_norm, shift_layer_norm = RMSNorm(width), nn.LayerNorm(width)
with torch.no_grad():
    rms_norm_shift_change = (shift_rms_norm(x + shift) - shift_rms_norm(x)).abs().max().item()
    layer_norm_shift_change = (shift_layer_norm(x + shift)
                               - shift_layer_norm(x)).abs().max().item()
print(f"largest change, RMSNorm: {rms_norm_shift_change:.2f}; "
      f"LayerNorm: below 1e-4: {layer_norm_shift_change < 1e-4}")

# %%
ch02.exercise_3(x, shift, rms_norm_shift_change, layer_norm_shift_change)
assert rms_norm_shift_change > 1 and layer_norm_shift_change < 1e-4

# %% [markdown]
# LayerNorm's output does not move (any change is rounding, below $10^{-4}$): it subtracts the
# mean first, and adding 5 to every feature only moves the mean. RMSNorm's output moves by
# about 3: $x + 5$ is dominated by the shared offset, so every output lands near $+1$,
# whatever $x$ was, and an entry that was, say, $-2$ swings all the way across. RMSNorm is
# invariant to scale but not to shift: an offset shared by all features passes through it to
# the next layer.
#
# **Exercise 4 (experiment).** The chapter's stack without normalisation, with each random
# weight also divided by $\sqrt{2 \cdot 24}$:

# %%
def stream_rms_scaled_init(num_layers: int, width: int) -> list[float]:
    """RMS of a residual stream x <- x + W x, W scaled by 1/sqrt(2 * num_layers), no norm."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, width, generator=generator)
    sizes = [rms(x).mean().item()]
    for _ in range(num_layers):
        weight = torch.randn(width, width, generator=generator) / width**0.5
        weight = weight / (2 * num_layers) ** 0.5  # GPT-2's scaled initialisation
        x = x + x @ weight.T
        sizes.append(rms(x).mean().item())
    return sizes


scaled_init_rms_by_layer = stream_rms_scaled_init(24, 256)
print(f"RMS after 24 layers with scaled initialisation: {scaled_init_rms_by_layer[-1]:.2f}")

# %%
ch02.exercise_4(scaled_init_rms_by_layer)
assert 1.2 < scaled_init_rms_by_layer[-1] < 1.4

# %% [markdown]
# The stream grows from RMS 1 to only about 1.29, instead of thousands with unscaled
# weights. Each layer now adds a vector about $1/\sqrt{48}$ the size of the stream, so the
# squared RMS grows by a factor of about $1 + 1/48$ per layer: $(49/48)^{12} \approx 1.28$
# after 24 layers. Scaled initialisation tames the stream at the start of training; it does
# not stop the weights from growing later, which is why the model also normalises every
# branch input.
#
# **Exercise 5.** LayerNorm subtracts the mean, $-2$, which leaves all zeros (and the
# $\epsilon$ keeps the division finite): the output is 0 everywhere, and the vector's value is
# lost. RMSNorm divides by the RMS, 2, and returns $-1$ everywhere: the sign survives.

# %%
rms_norm_of_constant = [-1.0, -1.0, -1.0, -1.0]
layer_norm_of_constant = [0.0, 0.0, 0.0, 0.0]

# %%
ch02.exercise_5(rms_norm_of_constant, layer_norm_of_constant)
