# %% [markdown]
# # 5. The SwiGLU feed-forward
#
# Every transformer block has two halves. Attention (chapter 4) moves information *between*
# positions; the **feed-forward network** (FFN) then transforms each position's vector *on its
# own*. It is the larger half: in most models it holds about two thirds of each block's
# parameters. Llama's FFN is **SwiGLU**, a gated variant that replaced the classic
# "expand, ReLU or GELU, contract" MLP.
#
# What you will build:
#
# - the three activation functions you will meet (ReLU, GELU, SiLU) and their slopes;
# - gating, the idea behind the GLU family, and your own `swiglu` function (exercise 1), checked
#   against `transformer_lib.model.swiglu.SwiGLU` and kept for chapter 6's model;
# - the $8/3$ width rule that gives SwiGLU the same parameter count as a 4× MLP, and the
#   rounding to a multiple of 64 that `ModelConfig` applies;
# - a small experiment where gating clearly helps.

# %%
import math

import torch
import torch.nn.functional as F
from torch import nn

from transformer_lib import ModelConfig, Transformer, parameter_counts
from transformer_lib.book import viz
from transformer_lib.book.exercises import ch05
from transformer_lib.book.pieces import keep
from transformer_lib.model.swiglu import SwiGLU

_ = torch.manual_seed(0)  # every random draw below is reproducible

# %% [markdown]
# ## What the feed-forward does
#
# The FFN is applied to every position independently, with the same weights: a sequence of
# $T$ vectors goes in, $T$ vectors come out, and no vector looks at another. Attention has
# already gathered context into each position; the FFN computes on what was gathered. A common
# picture is a large key-value memory: the first projection detects patterns in the vector, the
# second writes back what is associated with them.
#
# "Independently" is easy to check with the library's module: running it on a whole sequence
# gives the same result as running it on each position separately.

# %%
ffn = SwiGLU(d_model=32, hidden_dim=96)
sequence = torch.randn(1, 5, 32)  # (B, T, C)
together = ffn(sequence)
one_by_one = torch.stack([ffn(sequence[:, t]) for t in range(5)], dim=1)  # (B, T, C)
torch.testing.assert_close(together, one_by_one)
print("the FFN treats every position on its own")

# %% [markdown]
# And it is where most of a block's parameters sit. For the book's model (the
# `tinystories-cpu` preset, about 1.05M parameters in all), the 22.5M `seed-22.5M` preset and
# a GPT-2-sized model, counted on the `meta` device (shapes only, no memory allocated):

# %%
ffn_share, total_parameters = {}, {}
for preset in ("tinystories-cpu", "seed-22.5M", "gpt2-small"):
    with torch.device("meta"):
        counts = parameter_counts(Transformer(ModelConfig.from_preset(preset)))
    ffn_share[preset] = counts["feed_forward"] / (counts["attention"] + counts["feed_forward"])
    total_parameters[preset] = counts["total"]
    print(f"{preset:15s}: {counts['total']:>11,} parameters, feed-forward "
          f"{counts['feed_forward']:>10,}, {ffn_share[preset]:.1%} of attention + feed-forward")

# %% [markdown]
# About two thirds for the two larger ones: with their shapes every block has $4d^2$ attention
# parameters (as many key/value heads as query heads) and $3 \cdot d \cdot h \approx 8d^2$
# feed-forward ones ($h$, the hidden width, is explained below). The book's model gives its
# feed-forward three quarters: its grouped attention (2 key/value heads for 4 query heads)
# has $3d^2$ parameters, and its width $h = 384 = 3d$ makes $9d^2$.

# %%
assert 1.0e6 < total_parameters["tinystories-cpu"] < 1.1e6
assert 22.4e6 < total_parameters["seed-22.5M"] < 22.6e6
for preset in ("seed-22.5M", "gpt2-small"):
    assert 0.66 < ffn_share[preset] < 0.68
assert ffn_share["tinystories-cpu"] == 0.75  # 9 d^2 / (3 d^2 + 9 d^2), exactly

# %% [markdown]
# ## Activation functions: ReLU, GELU and SiLU
#
# Without a non-linearity between them, two linear maps collapse into one. The classic choices:
#
# - **ReLU**: $\max(0, x)$. Cheap, but its slope is exactly zero for every negative input, so a
#   unit that is pushed negative stops learning.
# - **GELU**: $x\,\Phi(x)$, with $\Phi$ the standard normal CDF (BERT, GPT-2). A smooth ReLU
#   that lets small negative values through.
# - **SiLU** (also called Swish): $x\,\sigma(x)$ with the logistic sigmoid
#   $\sigma(x) = 1/(1 + e^{-x})$. Very close to GELU; it is the "Swi" in SwiGLU.
#
# All three are in `torch.nn.functional`. We evaluate them on a grid:

# %%
grid = torch.linspace(-6, 6, 1201, dtype=torch.float64)  # step 0.01
activations = {"ReLU": F.relu, "GELU": F.gelu, "SiLU": F.silu}
values = {name: fn(grid) for name, fn in activations.items()}
viz.plot_lines(grid, values, title="Activation functions", xlabel="input x",
               ylabel="activation(x)")

# %% [markdown]
# For large positive inputs all three pass $x$ through; for large negative inputs all three
# give about 0. The difference is the region near zero. SiLU dips below zero: its minimum is
# a small negative value at a small negative input.

# %%
lowest = int(values["SiLU"].argmin())
print(f"SiLU's minimum: {float(values['SiLU'][lowest]):.3f} at x = {float(grid[lowest]):.2f}")

# %%
assert math.isclose(float(values["SiLU"][lowest]), -0.2785, abs_tol=1e-3)
assert math.isclose(float(values["SiLU"].max()), 6 * torch.sigmoid(torch.tensor(6.0)).item(),
                    rel_tol=1e-6)

# %% [markdown]
# The slope matters more than the value, because it is what the gradient flows through. We
# let autograd differentiate each function on the same grid:

# %%
def slope(fn, x: torch.Tensor) -> torch.Tensor:
    """d fn(x) / dx at every point of x, by autograd."""
    x = x.clone().requires_grad_(True)
    fn(x).sum().backward()  # each output depends on its own input only
    return x.grad


slopes = {name: slope(fn, grid) for name, fn in activations.items()}
viz.plot_lines(grid, slopes, title="Their derivatives", xlabel="input x",
               ylabel="d activation / dx")

# %% [markdown]
# ReLU's slope is a step from 0 to 1. GELU's and SiLU's are smooth: both are $1/2$ at zero,
# both overshoot 1 a little for positive inputs, and for negative inputs both are small but
# rarely zero (positive down to about $-1$, slightly negative below: SiLU's crosses zero at
# $-1.28$, GELU's at $-0.75$), so a unit pushed negative still receives a gradient.

# %%
zero = int(grid.abs().argmin())  # the grid point at x = 0
for name in ("GELU", "SiLU"):
    print(f"{name}: slope at 0 = {float(slopes[name][zero]):.3f}, "
          f"max slope = {float(slopes[name].max()):.3f}, min slope = {float(slopes[name].min()):.3f}")

# %%
assert float(slopes["ReLU"][grid < 0].abs().max()) == 0.0
for name in ("GELU", "SiLU"):
    assert math.isclose(float(slopes[name][zero]), 0.5, abs_tol=1e-9)
    assert float(slopes[name].max()) > 1.0 and float(slopes[name].min()) < 0.0

# %% [markdown]
# ## The classic MLP
#
# GPT-2's feed-forward widens the vector four times, applies GELU, and projects back:
#
# $$\text{MLP}(x) = W_2\,\text{GELU}(W_1 x), \qquad W_1 \in \mathbb{R}^{4d \times d},\;
# W_2 \in \mathbb{R}^{d \times 4d}.$$
#
# (GPT-2 also has biases; Llama-style models drop them, and so do we.) Its parameter count is
# $2 \cdot d \cdot 4d = 8d^2$. We keep this module as the yardstick for SwiGLU.

# %%
class MLP(nn.Module):
    """down(gelu(up(x))): the classic transformer feed-forward, bias-free."""

    def __init__(self, d_model: int, hidden_dim: int):
        super().__init__()
        self.up = nn.Linear(d_model, hidden_dim, bias=False)
        self.down = nn.Linear(hidden_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


# %% [markdown]
# ## Gating: the GLU family
#
# A **gated linear unit** (Dauphin et al., 2017) computes two projections of the same input
# and multiplies them element by element: one carries content, the other, passed through a
# squashing function, decides how much of each content unit gets through:
#
# $$\text{GLU}(x) = (W x) \odot \sigma(V x).$$
#
# Shazeer (2020) swapped the sigmoid for other activations and put the result inside the
# transformer's FFN: ReGLU (ReLU), GEGLU (GELU) and **SwiGLU** (Swish, i.e. SiLU). GEGLU and
# SwiGLU did best in his experiments, and PaLM and Llama adopted SwiGLU. In the names Llama
# uses:
#
# $$\text{SwiGLU}(x) = W_\text{down}\big(\text{SiLU}(W_\text{gate}\, x) \odot
# W_\text{up}\, x\big), \quad W_\text{gate}, W_\text{up} \in \mathbb{R}^{h \times d},\;
# W_\text{down} \in \mathbb{R}^{d \times h}.$$
#
# The product is the point. A plain MLP unit computes $\text{act}(w \cdot x)$, a function of one
# direction of $x$. A gated unit computes $\text{SiLU}(g \cdot x)\,(u \cdot x)$, which is
# close to a product of two directions of $x$: multiplicative interactions come for free,
# where an MLP has to approximate them with many units.
#
# **Exercise 1.** Write SwiGLU as a function of the input and the three weight matrices,
# stored as `nn.Linear` stores them, (out, in): $W_\text{gate}$ and $W_\text{up}$ are
# $(h, C)$, $W_\text{down}$ is $(C, h)$, and `x` has any leading dimensions. Each exercise
# in this book has a cell for your answer, which starts out holding a placeholder (`...`),
# and a check cell that prints `not attempted yet`, `correct`, or `not yet` with a hint; the
# worked answers are in `notebooks/solutions/05_swiglu_solutions.ipynb`. The check runs your
# function against the library's `SwiGLU` with the same weights on random inputs of several
# shapes, in float32 and bfloat16 (return `x`'s dtype), and compares the output and the
# gradients that reach `x` and all three weights. When it prints `correct`, the cell after it
# keeps your function for chapter 6, which assembles your pieces into a model (it reads back
# the function's source alone, with `torch`, `math` and `F` at hand).

# %%
def swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor,
           w_down: torch.Tensor) -> torch.Tensor:
    """W_down (silu(W_gate x) * W_up x) for x (..., C); w_gate and w_up (h, C), w_down (C, h).
    Returns (..., C) in x's dtype."""
    ...  # your code here


# %%
ch05.exercise_1(swiglu)

# %%
keep(swiglu)

# %% [markdown]
# The library's module holds the same three matrices as `nn.Linear` layers named `gate_proj`,
# `up_proj` and `down_proj` (the names Hugging Face's Llama uses), so a checkpoint's weights
# map one to one. From here on the chapter uses the library's `SwiGLU`.
#
# ## The 8/3 rule: same parameters as a 4× MLP
#
# SwiGLU has three matrices where the MLP has two. To spend the same parameters, its hidden
# width $h$ must shrink: $3 \cdot d \cdot h = 8 d^2$ gives
#
# $$h = \tfrac{2}{3} \cdot 4d = \tfrac{8}{3} d .$$
#
# $8d/3$ is rarely a whole number, and hardware prefers round ones. Matrix-multiply kernels
# work on tiles (GPU tensor cores on blocks of 16 to 128 elements, CPU vector units on 8 or 16
# floats at a time), so a width that is a multiple of 64 fills every tile and never leaves a
# ragged remainder. `ModelConfig` therefore rounds the width **up** to a multiple of
# `ffn_multiple_of = 64`: `ffn_hidden_dim = round_up(int(8 * d_model / 3), 64)`. (Meta's Llama
# rounds to 256: for $d = 4096$ that gives Llama 2 7B's 11008.) Here is the rule written out:

# %%
def ffn_width(d_model: int, multiple_of: int = 64) -> int:
    """ModelConfig's SwiGLU width: 8/3 * d_model, rounded up to a multiple of multiple_of."""
    width = int(8 * d_model / 3)
    return -(-width // multiple_of) * multiple_of  # ceiling division, then back up


print("Llama 2 7B, multiple of 256:", ffn_width(4096, multiple_of=256))

# %% [markdown]
# Now count both feed-forwards, in real modules, for every preset: the MLP at $4d$, SwiGLU at
# the width `ModelConfig` chose. `ModelConfig.ffn_hidden_dim` agrees with our rule.

# %%
def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


parity = {}
for preset in ("tiny", "tinystories-cpu", "seed-22.5M", "stories15M", "gpt2-small"):
    config = ModelConfig.from_preset(preset)
    d, h = config.d_model, config.ffn_hidden_dim
    assert h == ffn_width(d), preset
    with torch.device("meta"):
        mlp_params, swiglu_params = count(MLP(d, 4 * d)), count(SwiGLU(d, h))
    parity[preset] = {"d": d, "mlp": mlp_params, "swiglu": swiglu_params}
    print(f"{preset:15s} d={d:4d}  h={h:5d} (8d/3 = {8 * d / 3:7.1f})  MLP {mlp_params:>9,}  "
          f"SwiGLU {swiglu_params:>9,}  ratio {swiglu_params / mlp_params:.3f}")

# %% [markdown]
# Where $8d/3$ is already a multiple of 64 ($d = 288$ and $d = 768$) the counts are identical;
# elsewhere SwiGLU is a little larger, by less than one rounding step of 64 hidden units,
# i.e. fewer than $3 \cdot d \cdot 64$ parameters.

# %%
for preset, row in parity.items():
    assert 0 <= row["swiglu"] - row["mlp"] < 3 * row["d"] * 64, preset
assert parity["gpt2-small"]["swiglu"] == parity["gpt2-small"]["mlp"]
assert parity["stories15M"]["swiglu"] == parity["stories15M"]["mlp"]

# %% [markdown]
# The small models pay most for the rounding: at $d = 64$, rounding 170 up to 192 adds 12.5%,
# and $d = 128$ pays the same. That is one reason `ffn_hidden_dim` is a plain config field
# you can set by hand.
#
# ## A small experiment: when gating helps
#
# Does the product inside SwiGLU buy anything at equal size? A task made of products shows
# it clearly. Each input is a random vector $x \in \mathbb{R}^{16}$; the target multiplies
# every coordinate with its neighbour, $y_j = x_j\, x_{j-1}$ (wrapping round). We train a 4×
# GELU MLP (hidden 64, 2,048 parameters) and a SwiGLU (hidden 43, 2,064 parameters) with the
# same optimiser, data and steps. The run is in float64, so that the tiny rounding
# differences between machines stay far below the printed digits; it takes a few seconds.

# %%
def neighbour_products(x: torch.Tensor) -> torch.Tensor:
    """y_j = x_j * x_{j-1}, wrapping round: a target made of products."""
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


torch.manual_seed(0)
mlp_losses = train(MLP(16, 64).double())
torch.manual_seed(0)
swiglu_losses = train(SwiGLU(16, 43).double())
print(f"MLP:    {count(MLP(16, 64)):,} parameters, "
      f"mean loss over the last 50 steps {sum(mlp_losses[-50:]) / 50:.3f}")
print(f"SwiGLU: {count(SwiGLU(16, 43)):,} parameters, "
      f"mean loss over the last 50 steps {sum(swiglu_losses[-50:]) / 50:.3f}")

# %% [markdown]
# The two loss curves, on a log scale (the target's variance is 1, so a model that always
# predicts 0 scores 1.0, the dashed line):

# %%
viz.plot_lines(range(1, 301), {"4x GELU MLP": mlp_losses, "SwiGLU (8/3 width)": swiglu_losses},
               title=r"Learning $y_j = x_j\,x_{j-1}$ at equal parameter count", xlabel="step",
               ylabel="mean squared error", logy=True, reference=1.0)

# %% [markdown]
# SwiGLU ends several times lower. This toy target was chosen to favour products, so do not
# read it as a general law; in language modelling the gain Shazeer measured was smaller but
# consistent, which is why it became the default.

# %%
assert sum(swiglu_losses[-50:]) < 0.5 * sum(mlp_losses[-50:])

# %% [markdown]
# ## Measured: what this choice buys
#
# Chapter 12 measures this choice on the book's own task, and the answer is more modest than the
# papers suggest: a GELU MLP of equal parameters (1.5 times wider) ends within 0.001 bits per
# byte of SwiGLU, well inside the seeds' spread. At this size and length the gate buys nothing
# measurable; the papers' gains come from far larger models and longer runs. These are runs of
# chapter 7's 300 steps from three seeds each, so they measure a short run, not where a long one
# ends up.

# %% [markdown]
# ## Exercises
#
# Exercise 1 asked for `swiglu`, above; the others follow. The worked answers are in
# `notebooks/solutions/05_swiglu_solutions.ipynb`.
#
# **Exercise 2.** A model has $d_\text{model} = 512$ and uses `ModelConfig`'s rule. How wide is
# its SwiGLU, and how many parameters does one SwiGLU feed-forward have? Work it out by hand.

# %%
width_and_parameters = ...  # your answer: (hidden width, number of parameters)

# %%
ch05.exercise_2(width_and_parameters)

# %% [markdown]
# **Exercise 3.** Derive SiLU's derivative by hand and write it as a function. With
# $s = \sigma(x)$, you need $\sigma'(x) = s(1 - s)$ and the product rule. The check compares it
# with autograd on a grid of points.

# %%
def silu_derivative(x: torch.Tensor) -> torch.Tensor:
    """d/dx [x * sigmoid(x)], element-wise."""
    ...  # your code here


# %%
ch05.exercise_3(silu_derivative)

# %% [markdown]
# **Exercise 4.** Write a GEGLU feed-forward (the same as SwiGLU, but GELU on the gate) that
# reuses the three weight matrices of a `SwiGLU` module `ffn`:
# $W_\text{down}(\text{GELU}(W_\text{gate} x) \odot W_\text{up} x)$. The check runs it on
# random inputs and weights.

# %%
def geglu(x: torch.Tensor, ffn: SwiGLU) -> torch.Tensor:
    """GEGLU of x (..., C) with the weights of ffn."""
    ...  # your code here


# %%
ch05.exercise_4(geglu)

# %% [markdown]
# **Exercise 5 (experiment: what does the SiLU on the gate do?).** Take the activation off the
# gate: a *bilinear* feed-forward, $W_\text{down}\big((W_\text{gate}\, x) \odot
# W_\text{up}\, x\big)$. Write it as a class `Bilinear(SwiGLU)` that only overrides `forward`
# (so `Bilinear(16, 43)` builds it at the same width as the experiment's SwiGLU), then train
# it exactly as the SwiGLU above: `torch.manual_seed(0)`, build it, `.double()`, and pass it
# to `train`. Hand in the trained model and the per-step losses `train` returns; the check
# trains your class again from the same seed and compares every step. Before you run it: will
# it land above or below SwiGLU on the neighbour products, and what does that say about where
# SwiGLU's advantage on this task comes from? Compare the two once you have the numbers.

# %%
bilinear_model = ...  # your trained Bilinear(16, 43) in float64
bilinear_losses = ...  # your measurement: the list that train(bilinear_model) returns

# %%
ch05.exercise_5(bilinear_model, bilinear_losses)

# %% [markdown]
# ## What we built, and where it lives in the library
#
# - The **feed-forward** transforms each position on its own and holds about two thirds of a
#   block's parameters.
# - **SwiGLU** multiplies a SiLU-gated projection with a plain one before projecting back
#   (your `swiglu`, exercise 1, kept for chapter 6):
#   `transformer_lib.model.swiglu.SwiGLU(d_model, hidden_dim)`, with bias-free `gate_proj`,
#   `up_proj` and `down_proj` named as in Hugging Face's Llama, so checkpoints map one to one.
# - Its width is `ModelConfig.ffn_hidden_dim`: by default $8/3 \cdot d_\text{model}$ rounded up
#   to a multiple of `ffn_multiple_of = 64`, which keeps the parameter count within one
#   rounding step of a 4× MLP's. Set `ffn_hidden_dim` to choose another width.
# - Each `Block` holds one as `block.mlp`, applied after `post_attention_layernorm`; the next
#   chapter assembles the block.
