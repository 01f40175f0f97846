# %% [markdown]
# # Solutions to chapter 2: Embeddings and RMSNorm
#
# The answers to the exercises of chapter 2, each followed by the same check call as in the
# chapter, which now prints `correct`. Exercises 3 and 4 are experiments: each is run here and
# its measured result stated beside the output.

# %%
import torch
from torch import nn

from transformer_lib import ModelConfig, Transformer, parameter_counts
from transformer_lib.book.exercises import ch02
from transformer_lib.model.rmsnorm import RMSNorm


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last dimension (as in the chapter)."""
    return x.pow(2).mean(dim=-1).sqrt()

# %% [markdown]
# **Exercise 1.** The mean of the squares is $(9 + 16)/2 = 12.5$, so the RMS is
# $\sqrt{12.5} \approx 3.536$, and the outputs are $3/3.536$ and $4/3.536$.

# %%
rms_of_3_4 = (12.5) ** 0.5
rms_norm_of_3_4 = [round(3 / rms_of_3_4, 3), round(4 / rms_of_3_4, 3)]
print(rms_norm_of_3_4)

# %%
ch02.exercise_1(rms_norm_of_3_4)

# %% [markdown]
# **Exercise 2.** Two norms per block and one before the output layer make 5 norms of width
# 64. An RMSNorm learns one gain per feature, 64 numbers; a LayerNorm learns a gain and a
# bias, 128.

# %%
rms_norm_parameters = (2 * 2 + 1) * 64
layer_norm_parameters = (2 * 2 + 1) * 2 * 64
assert rms_norm_parameters == parameter_counts(Transformer(ModelConfig.from_preset("tiny")))["norms"]

# %%
ch02.exercise_2(rms_norm_parameters, layer_norm_parameters)

# %% [markdown]
# **Exercise 3 (experiment).** We shift every feature by 5 and measure the largest change of
# each norm's output.

# %%
width = 64
torch.manual_seed(0)
x = torch.randn(8, width)
shift_rms_norm, shift_layer_norm = RMSNorm(width), nn.LayerNorm(width)
with torch.no_grad():
    rms_norm_shift_change = (shift_rms_norm(x + 5) - shift_rms_norm(x)).abs().max().item()
    layer_norm_shift_change = (shift_layer_norm(x + 5) - shift_layer_norm(x)).abs().max().item()
print(f"largest change, RMSNorm: {rms_norm_shift_change:.2f}; "
      f"LayerNorm: {layer_norm_shift_change:.4f}")

# %%
ch02.exercise_3(rms_norm_shift_change, layer_norm_shift_change)
assert rms_norm_shift_change > 1 and layer_norm_shift_change < 1e-4

# %% [markdown]
# LayerNorm's output does not move (any change is rounding, below $10^{-4}$): it subtracts the
# mean first, and adding 5 to every feature only moves the mean. RMSNorm's output moves by more
# than 1: $x + 5$ is dominated by the shared offset, so every output lands near $+1$,
# whatever $x$ was. RMSNorm is invariant to scale but not to shift: an offset shared by all
# features passes through it to the next layer.
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


scaled_init_final_rms = stream_rms_scaled_init(24, 256)[-1]
print(f"RMS after 24 layers with scaled initialisation: {scaled_init_final_rms:.2f}")

# %%
ch02.exercise_4(scaled_init_final_rms)
assert 1.2 < scaled_init_final_rms < 1.4

# %% [markdown]
# The stream grows from RMS 1 to only about 1.29, instead of about 4,000 with unscaled
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
