# %% [markdown]
# # Solutions to chapter 5: The SwiGLU feed-forward
#
# One answer per exercise of chapter 5, each followed by the same check the chapter calls. The
# experiment (a gate without its SiLU) is run here and its measured result stated beside the
# output.

# %%
import torch
import torch.nn.functional as F
from torch import nn

from transformer_lib.book.exercises import ch05
from transformer_lib.book.pieces import keep
from transformer_lib.model.swiglu import SwiGLU

_ = torch.manual_seed(0)

# %% [markdown]
# ## Exercise 1
#
# Two projections of `x` (each `x @ w.T`, since the weights are stored (out, in)), SiLU on the
# gate only, the element-wise product, and the projection back. Autograd gives the gradients of
# `x` and of all three weights; the result keeps `x`'s dtype because every step does.

# %%
def swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor,
           w_down: torch.Tensor) -> torch.Tensor:
    """W_down (silu(W_gate x) * W_up x) for x (..., C); w_gate and w_up (h, C), w_down (C, h).
    Returns (..., C) in x's dtype."""
    gate = F.silu(x @ w_gate.T)  # (..., h): how much of each unit passes
    up = x @ w_up.T  # (..., h)
    return (gate * up) @ w_down.T  # (..., C)


# %%
ch05.exercise_1(swiglu)

# %%
keep(swiglu)

# %% [markdown]
# ## Exercise 2
#
# $8 \cdot 512 / 3 = 1365.33$, cut to 1365; the next multiple of 64 is $22 \cdot 64 = 1408$.
# Three matrices of $1408 \times 512$ give $3 \cdot 512 \cdot 1408 = 2{,}162{,}688$ parameters.

# %%
hidden = -(-int(8 * 512 / 3) // 64) * 64  # round up to a multiple of 64
width_and_parameters = (hidden, 3 * 512 * hidden)
print(width_and_parameters)

# %%
ch05.exercise_2(width_and_parameters)

# %% [markdown]
# ## Exercise 3
#
# With $s = \sigma(x)$: $\frac{d}{dx}\,x s = s + x\,s(1 - s) = s\,\big(1 + x(1 - s)\big)$.

# %%
def silu_derivative(x: torch.Tensor) -> torch.Tensor:
    """d/dx [x * sigmoid(x)], element-wise."""
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


# %%
ch05.exercise_3(silu_derivative)

# %% [markdown]
# ## Exercise 4
#
# SwiGLU with GELU in place of SiLU on the gate; the module's three layers do the products.

# %%
def geglu(x: torch.Tensor, ffn: SwiGLU) -> torch.Tensor:
    """GEGLU of x (..., C) with the weights of ffn."""
    return ffn.down_proj(F.gelu(ffn.gate_proj(x)) * ffn.up_proj(x))


# %%
ch05.exercise_4(geglu)

# %% [markdown]
# ## Exercise 5
#
# The chapter's training function and its SwiGLU run, repeated here, then the same run for a
# feed-forward whose gate keeps its projection but loses its SiLU.

# %%
def neighbour_products(x: torch.Tensor) -> torch.Tensor:
    """y_j = x_j * x_{j-1}, wrapping round."""
    return x * x.roll(1, dims=-1)


def train(model: nn.Module, steps: int = 300, batch_size: int = 128) -> list[float]:
    """Adam on fresh random batches (the same ones for every model); the loss of each step."""
    data = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        x = torch.randn(batch_size, 16, generator=data, dtype=torch.float64)
        loss = F.mse_loss(model(x), neighbour_products(x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


class Bilinear(SwiGLU):
    """SwiGLU without the SiLU: down((gate x) * (up x))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.gate_proj(x) * self.up_proj(x))


torch.manual_seed(0)
swiglu_losses = train(SwiGLU(16, 43).double())
torch.manual_seed(0)
bilinear_model = Bilinear(16, 43).double()
bilinear_losses = train(bilinear_model)
swiglu_final, bilinear_final = sum(swiglu_losses[-50:]) / 50, sum(bilinear_losses[-50:]) / 50
print(f"mean loss over the last 50 steps: SwiGLU {swiglu_final:.3f}, "
      f"bilinear {bilinear_final:.4f}")

# %%
ch05.exercise_5(bilinear_model, bilinear_losses)

# %% [markdown]
# Without its SiLU the gate does better, not worse: over the last 50 steps the bilinear
# feed-forward reaches a loss of 0.0020 against SwiGLU's 0.025, more than ten times lower. The
# target is a sum of products of pairs of inputs, and $(g \cdot x)(u \cdot x)$ is exactly such a
# product, so a bilinear unit can represent it outright; the SiLU only bends it. SwiGLU's edge
# over the MLP on this task therefore comes from the multiplication of two projections, not
# from the activation. (On language, Shazeer's bilinear variant was close to SwiGLU but a
# little worse: there the non-linearity earns its place.)

# %%
assert bilinear_final < 0.2 * swiglu_final
