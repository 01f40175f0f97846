# %% [markdown]
# # 2. Embeddings and RMSNorm
#
# Chapter 1 turned text into token ids. A neural network computes with vectors, so the first
# layer of the model swaps each id for a learned vector: its *embedding*. Those vectors then
# travel through dozens of layers, and to keep their size under control every layer starts by
# *normalising* its input. This chapter builds both pieces from scratch:
#
# - an embedding lookup, shown to be the same as multiplying a one-hot vector by a matrix;
# - LayerNorm, the normalisation of the original Transformer and GPT-2, checked against PyTorch;
# - RMSNorm, the simpler normalisation of Llama and of our model, which you write yourself
#   (exercise 1) and check against `transformer_lib.model.rmsnorm`, values and gradients;
# - measurements: what RMSNorm is invariant to, what its `eps` does, what it saves compared
#   with LayerNorm, and why it computes in float32 even when the model runs in bfloat16.

# %%
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import symbolic_trace
from torch.utils import benchmark

from transformer_lib import ModelConfig, Transformer, book, parameter_counts
from transformer_lib.book import viz
from transformer_lib.book.exercises import ch02
from transformer_lib.book.pieces import keep
from transformer_lib.model.rmsnorm import RMSNorm

_ = torch.manual_seed(0)  # every random draw below is reproducible

# %% [markdown]
# ## Embeddings: an id picks a row
#
# An embedding table is a matrix $E$ with one row per token id: shape $(V, d)$ for a vocabulary
# of $V$ ids and vectors of width $d$ (the model's `d_model`). Token $i$ is represented by row
# $E_i$. Here is a small table, $V = 10$ and $d = 4$:

# %%
vocab_size, d_model = 10, 4
embedding = nn.Embedding(vocab_size, d_model)
token_ids = torch.tensor([[3, 1, 4, 1, 5]])  # (B=1, T=5)
vectors = embedding(token_ids)  # (B, T, d)
print(f"ids {tuple(token_ids.shape)} -> vectors {tuple(vectors.shape)}")
print(vectors[0, :2].detach().numpy().round(3))

# %% [markdown]
# A lookup is a matrix product in disguise. Write token $i$ as a *one-hot* vector $e_i$ of
# length $V$ (a 1 at position $i$, zeros elsewhere); then $e_i^\top E = E_i$: the product picks
# out row $i$. Doing it for every position at once:

# %%
one_hot = F.one_hot(token_ids, num_classes=vocab_size).float()  # (B, T, V)
from_matmul = one_hot @ embedding.weight  # (B, T, V) @ (V, d) -> (B, T, d)
torch.testing.assert_close(from_matmul, vectors, rtol=0, atol=0)
print("one-hot @ E equals nn.Embedding, bit for bit")

# %% [markdown]
# So an embedding layer *is* a linear layer without bias, fed one-hot inputs. It is implemented
# as a lookup because the product wastes almost all its work on zeros: with the book's 2,048-id
# vocabulary and $d = 128$, each token would cost $V \cdot d$ multiply-adds instead of copying
# $d$ numbers.

# %%
book_vocab, book_width = book.BOOK_VOCAB_SIZE, book.BOOK_MODEL["d_model"]
print(f"one-hot product: {book_vocab * book_width:,} multiply-adds per token; "
      f"lookup: {book_width} numbers copied")

# %% [markdown]
# The same view explains training. The gradient of a lookup reaches only the rows that were
# used, and a row used twice receives the sum of both positions' gradients. Rows of tokens absent
# from the batch get a zero gradient (an optimiser with momentum, such as AdamW, may still move
# them a little, from what earlier batches taught it).

# %%
embedding.zero_grad()
embedding(token_ids).sum().backward()
rows_with_gradient = embedding.weight.grad.abs().sum(dim=1).nonzero().flatten().tolist()
print(f"ids in the batch: {sorted(set(token_ids.flatten().tolist()))}; "
      f"rows with a gradient: {rows_with_gradient}")
print(f"gradient of row 1 (used twice): {embedding.weight.grad[1].tolist()}")

# %%
assert rows_with_gradient == sorted(set(token_ids.flatten().tolist()))
assert torch.equal(embedding.weight.grad[1], torch.full((d_model,), 2.0))

# %% [markdown]
# ### The embedding in our model
#
# The library's `Transformer` starts with `embed_tokens = nn.Embedding(vocab_size, d_model)`.
# It also *ties* the output layer to it: the logit of token $i$ is the dot product of the final
# hidden vector with $E_i$, so one matrix both reads and writes tokens (as in GPT-2; the 2017
# Transformer tied them too). Tying saves $V \cdot d$ parameters.

# %%
config = ModelConfig.from_preset("tiny")
model = Transformer(config)
print(f"embed_tokens: {model.embed_tokens}")
print(f"lm_head shares its weight: {model.lm_head.weight is model.embed_tokens.weight}")
print(parameter_counts(model))

# %%
assert model.lm_head.weight is model.embed_tokens.weight
assert parameter_counts(model)["embedding"] == config.vocab_size * config.d_model

# %% [markdown]
# The rows start as small random numbers, drawn from $\mathcal N(0, 0.02^2)$ (GPT-2's
# initialisation), so a freshly embedded token has a root-mean-square (RMS) size of about 0.02.
# The RMS of a vector $x$ of width $d$ is
# $$\operatorname{RMS}(x) = \sqrt{\tfrac{1}{d}\textstyle\sum_{i=1}^{d} x_i^2}.$$

# %%
def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last dimension."""
    return x.pow(2).mean(dim=-1).sqrt()


embedding_rms = rms(model.embed_tokens.weight).mean().item()
print(f"mean RMS of an embedding row: {embedding_rms:.4f}")

# %%
assert abs(embedding_rms - 0.02) < 0.001

# %% [markdown]
# ## Why normalise
#
# The model is a *residual stream*: each of its layers reads the current vectors $x$ and adds
# its output back, $x \leftarrow x + f(x)$. If a layer's output grows with its input, every
# layer multiplies the size of the stream, and after a few dozen layers the numbers are huge
# (or, with other weights, vanishingly small). Gradients suffer the same fate.
#
# A toy stack of random linear layers shows it. Without normalisation each layer adds a vector
# about as large as the stream itself, so the RMS grows by roughly $\sqrt 2$ per layer. With
# *pre-norm*, the layer reads a normalised copy of the stream, $x \leftarrow x + f(\mathrm{norm}
# (x))$: it adds a vector of fixed size, and the stream grows only like $\sqrt{\text{depth}}$.

# %%
def stream_rms_by_depth(num_layers: int, width: int, pre_norm: bool) -> list[float]:
    """RMS of a residual stream x <- x + W x (or x + W norm(x)) after each random layer."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, width, generator=generator)
    sizes = [rms(x).mean().item()]
    for _ in range(num_layers):
        weight = torch.randn(width, width, generator=generator) / width**0.5  # keeps RMS ~ 1
        branch_input = x / rms(x)[:, None] if pre_norm else x
        x = x + branch_input @ weight.T
        sizes.append(rms(x).mean().item())
    return sizes


depth = list(range(25))
without_norm = stream_rms_by_depth(24, 256, pre_norm=False)
with_pre_norm = stream_rms_by_depth(24, 256, pre_norm=True)
print(f"after 24 layers: RMS {without_norm[-1]:.0f} without normalisation, "
      f"{with_pre_norm[-1]:.1f} with pre-norm")

# %%
viz.plot_lines(depth, {"x + f(x)": without_norm, "x + f(norm(x))  (pre-norm)": with_pre_norm},
               title="Size of the residual stream through a random stack", xlabel="layer",
               ylabel="RMS of the stream", logy=True, markers=True)

# %%
assert without_norm[-1] > 1000 and 3 < with_pre_norm[-1] < 8  # ~2**12 against ~sqrt(25)

# %% [markdown]
# Normalising does a second job: every layer sees inputs of a known size, whatever the layers
# before it did, so one learning rate suits them all. The original Transformer normalised
# *after* each addition (post-norm); GPT-2 moved the norm to the branch input (pre-norm), which
# trains deep stacks reliably with a short learning-rate warm-up, where post-norm needs a long
# and careful one (Xiong et al., 2020). Chapter 6 assembles the block.

# %% [markdown]
# ## LayerNorm from scratch
#
# LayerNorm (Ba et al., 2016), used by the 2017 Transformer and GPT-2, standardises each vector
# over its $d$ features, then applies a learned gain $\gamma$ and bias $\beta$:
# $$\mathrm{LayerNorm}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot \gamma + \beta,
# \qquad \mu = \tfrac{1}{d}\textstyle\sum_i x_i, \quad
# \sigma^2 = \tfrac{1}{d}\textstyle\sum_i (x_i - \mu)^2.$$
# The small $\epsilon$ keeps the division finite when all features are (nearly) equal.

# %%
class LayerNormFromScratch(nn.Module):
    """Subtract the mean, divide by the standard deviation, then scale and shift."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # gamma
        self.bias = nn.Parameter(torch.zeros(dim))  # beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=-1, keepdim=True)
        variance = centred.pow(2).mean(dim=-1, keepdim=True)  # biased (divides by d), as above
        return centred * torch.rsqrt(variance + self.eps) * self.weight + self.bias

# %% [markdown]
# We check it against PyTorch's `torch.nn.functional.layer_norm`. A fresh norm has $\gamma = 1$
# and $\beta = 0$, which would hide mistakes in how they are applied, so we first give PyTorch's
# `nn.LayerNorm` random parameters and copy them *from* it *into* ours.

# %%
width = 64
reference_layer_norm = nn.LayerNorm(width)
with torch.no_grad():
    reference_layer_norm.weight.normal_()
    reference_layer_norm.bias.normal_()

our_layer_norm = LayerNormFromScratch(width)
our_layer_norm.load_state_dict(reference_layer_norm.state_dict())

x = 3 * torch.randn(2, 5, width) + 1  # (B, T, d), deliberately off-centre and large
expected = F.layer_norm(x, (width,), reference_layer_norm.weight, reference_layer_norm.bias,
                        reference_layer_norm.eps)
torch.testing.assert_close(our_layer_norm(x), expected)
print("LayerNormFromScratch matches torch.nn.functional.layer_norm")

# %% [markdown]
# ## RMSNorm from scratch
#
# RMSNorm (Zhang & Sennrich, 2019) keeps only the rescaling. It does not subtract the mean and
# has no bias:
# $$\mathrm{RMSNorm}(x) = \frac{x}{\sqrt{\tfrac{1}{d}\sum_i x_i^2 + \epsilon}} \odot g.$$
# The argument of the paper: what stabilises training is controlling the *scale* of the vector;
# re-centring it adds work without helping. Llama and most recent models agree, and so does our
# model, which uses RMSNorm in every place GPT-2 used LayerNorm.

# %% [markdown]
# **Exercise 1.** Write it. Each exercise in this book has a cell for your answer, which starts
# out holding a placeholder (`...`), and a check cell that prints `not attempted yet`,
# `correct`, or `not yet` with a hint; the worked answers are in
# `notebooks/solutions/02_embeddings_rmsnorm_solutions.ipynb`.
#
# `rms_norm(x, weight, eps)` normalises every vector along the last dimension of `x` and
# multiplies by the gain `weight`. The check runs it against the library's
# `transformer_lib.model.rmsnorm.rms_norm` on random inputs of several shapes, in float32 and
# in the 16-bit formats bfloat16 and float16, and compares the outputs and the gradients that
# reach `x` and `weight` (so compute with tensor operations that autograd follows). Both
# functions receive the same random gain; a gain of ones would hide a forgotten `weight`. For
# 16-bit inputs, compute inside in float32 and return the result in `x`'s dtype; the end of
# this chapter shows why. When it prints `correct`, the next cell keeps your function for
# chapter 6, which assembles your pieces into a model. Chapter 6 reads back the function's
# source alone, with `torch` and `F` (`torch.nn.functional`) at hand: write any helper inside
# it.

# %%
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dimension. x: (..., D) float32, bfloat16 or float16; weight: (D,)
    of the same dtype; eps > 0. Returns (..., D) in x's dtype, computed in float32 inside."""
    ...  # your code here


# %%
ch02.exercise_1(rms_norm)

# %%
keep(rms_norm)

# %% [markdown]
# From here on we use the library's `RMSNorm`, a module that holds the gain as a parameter and
# calls `rms_norm`. A fresh one has a gain of ones; we randomise it, as training would.

# %%
library_norm = RMSNorm(width, eps=1e-5)
with torch.no_grad():
    library_norm.weight.normal_()
print(library_norm)

# %% [markdown]
# The two norms are close relatives: for a vector whose mean is already zero, the RMS *is* the
# standard deviation, and RMSNorm equals LayerNorm without its bias.

# %%
centred = x - x.mean(dim=-1, keepdim=True)
no_bias_layer_norm = F.layer_norm(centred, (width,), library_norm.weight, None, library_norm.eps)
torch.testing.assert_close(library_norm(centred), no_bias_layer_norm)
print("on zero-mean vectors, RMSNorm == LayerNorm without bias")

# %% [markdown]
# ## What RMSNorm ignores: the scale of its input
#
# Multiplying the input by any $a > 0$ multiplies its RMS by $a$ too, so the ratio does not
# change: $\mathrm{RMSNorm}(a x) = \mathrm{RMSNorm}(x)$, apart from $\epsilon$. We feed one
# vector at scales from $10^{-6}$ to $10^{4}$ to a norm with gain 1 and measure the output's
# RMS, for Llama's $\epsilon = 10^{-5}$ and a larger $\epsilon = 10^{-2}$.

# %%
scales = torch.logspace(-6, 4, steps=41)
unit_vector = torch.randn(width)
unit_vector = unit_vector / rms(unit_vector)  # RMS exactly 1, so the input RMS is the scale
output_rms = {}
for eps in (1e-5, 1e-2):
    norm = RMSNorm(width, eps=eps)
    with torch.no_grad():
        output_rms[f"eps = {eps:g}"] = [rms(norm(s * unit_vector)).item() for s in scales]
print("input RMS   output RMS (eps=1e-5)   output RMS (eps=1e-2)")
for s in (1e-6, 1e-4, 1e-2, 1.0, 1e4):
    i = int(torch.argmin((scales - s).abs()))
    print(f"{scales[i]:9.0e}   {output_rms['eps = 1e-05'][i]:21.4f}   "
          f"{output_rms['eps = 0.01'][i]:21.4f}")

# %%
viz.plot_lines(scales, output_rms, title="RMSNorm output against input scale",
               xlabel="RMS of the input", ylabel="RMS of the output", logx=True,
               reference=1.0)

# %% [markdown]
# Well above $\sqrt{\epsilon}$ (about 0.003 for $\epsilon = 10^{-5}$) the output has RMS 1
# whatever the input's size: the curve is flat. Below it, $\epsilon$ dominates the denominator and the output shrinks with the input instead
# of being blown up to unit size. That is the second job of $\epsilon$: a vector that is almost
# zero is mostly rounding noise, and amplifying it a millionfold would only amplify the noise.

# %%
flat = [y for s, y in zip(scales, output_rms["eps = 1e-05"], strict=True) if s >= 0.1]
assert all(abs(y - 1) < 1e-3 for y in flat)  # scale invariance well above sqrt(eps)
assert output_rms["eps = 1e-05"][0] < 1e-3  # a tiny input stays tiny
at_tenth = int(torch.argmin((scales - 0.1).abs()))
assert output_rms["eps = 0.01"][at_tenth] < output_rms["eps = 1e-05"][at_tenth]  # bigger eps, more damping

# %% [markdown]
# Its first job shows at exactly zero, for example a padding vector: without $\epsilon$ the norm
# computes $0/0$.

# %%
zeros = torch.zeros(1, width)
print(f"eps=1e-5: {RMSNorm(width, eps=1e-5)(zeros)[0, :3].tolist()}; "
      f"eps=0: {RMSNorm(width, eps=0.0)(zeros)[0, :3].tolist()}")

# %%
assert torch.equal(RMSNorm(width, eps=1e-5)(zeros), zeros)
assert torch.isnan(RMSNorm(width, eps=0.0)(zeros)).all()

# %% [markdown]
# ## What RMSNorm saves
#
# Count the operations each norm performs. `torch.fx.symbolic_trace` records every operation of
# a module's `forward` as a node of a graph; we list LayerNorm's.

# %%
def traced_operations(module: nn.Module) -> list[str]:
    """Names of the tensor operations a module's forward performs, in order."""
    graph = symbolic_trace(module).graph
    return [getattr(node.target, "__name__", str(node.target)) for node in graph.nodes
            if node.op in ("call_function", "call_method")]


layer_norm_ops = traced_operations(LayerNormFromScratch(width))
print(f"LayerNorm: {len(layer_norm_ops)} operations, {layer_norm_ops}")

# %%
assert layer_norm_ops.count("mean") == 2 and layer_norm_ops.count("sub") == 1

# %% [markdown]
# RMSNorm's formula drops the first `mean`, the subtraction and the bias: it needs one
# reduction over the features instead of two, and has half the parameters ($d$ instead of
# $2d$). A norm does so little arithmetic per number that its speed is set by memory traffic,
# and each unfused operation reads and writes the whole tensor once more.
#
# Let us time them on 2,048 vectors of several widths: our LayerNorm, PyTorch's `F.rms_norm`,
# which on the CPU computes RMSNorm one operation after another as a from-scratch version
# would, and PyTorch's `F.layer_norm`, which computes LayerNorm in one *fused* kernel. (The
# timings vary from machine to machine and run to run; on CUDA, time with
# `torch.cuda.synchronize()` around the work, which `torch.utils.benchmark` does for you.)

# %%
def time_ms(function, x: torch.Tensor) -> float:
    """Time of function(x) in milliseconds: the fastest of three medians (torch.utils.benchmark),
    since other programs on the machine can only slow a run down."""
    timer = benchmark.Timer(stmt="function(x)", globals={"function": function, "x": x})
    return min(timer.blocked_autorange(min_run_time=0.05).median for _ in range(3)) * 1e3


widths = [256, 512, 1024, 2048]
timings = {"LayerNorm (from scratch)": [], "F.rms_norm (operation by operation)": [],
           "F.layer_norm (fused kernel)": []}
with torch.no_grad():
    for dim in widths:
        batch = torch.randn(2048, dim)
        timings["LayerNorm (from scratch)"].append(time_ms(LayerNormFromScratch(dim), batch))
        timings["F.rms_norm (operation by operation)"].append(
            time_ms(lambda t: F.rms_norm(t, t.shape[-1:], eps=1e-5), batch))
        timings["F.layer_norm (fused kernel)"].append(
            time_ms(lambda t: F.layer_norm(t, t.shape[-1:]), batch))
for name, values in timings.items():
    per_width = ", ".join(f"d={dim}: {v:.3f} ms" for dim, v in zip(widths, values, strict=True))
    print(f"{name}: {per_width}")

# %%
viz.plot_lines(widths, timings, title="Time of one normalisation of 2,048 vectors (CPU)",
               xlabel="width d", ylabel="milliseconds", logx=True, logy=True, markers=True)

# %% [markdown]
# Our LayerNorm, nine operations one after another, is the slowest of the three. PyTorch's two
# are closer to each other, and which of them wins depends on the width and on the machine (and
# on whatever else the machine is doing: run the cell again and the numbers move). What decides
# the speed of a norm is memory traffic, not arithmetic: each separate operation reads and
# writes the whole tensor once more, a fused kernel reads it once and writes it once. That is
# why training code fuses its norms (`torch.compile`, or hand-written CUDA and Triton
# kernels); fused, RMSNorm keeps its edge of one reduction fewer. Either way, norms are a small
# share of a transformer's time, which the matrix multiplications dominate. The main gains from
# RMSNorm are simplicity and fewer parameters, at no cost in quality.

# %%
slowest = sum(timings["LayerNorm (from scratch)"])
assert sum(timings["F.layer_norm (fused kernel)"]) < slowest
assert sum(timings["F.rms_norm (operation by operation)"]) < slowest

# %% [markdown]
# ## Why the norm computes in float32
#
# On a CUDA GPU the library trains under *autocast* with bfloat16 (chapter 9): matrix
# multiplications run in bfloat16, which keeps float32's range but only 8 significant bits,
# about 2 to 3 decimal digits. The library's `rms_norm` therefore casts its input to float32,
# normalises, and casts the result back once. Under autocast the input indeed arrives in
# bfloat16:

# %%
projection = nn.Linear(width, width)
with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
    hidden = projection(torch.randn(4, width))
    normed = library_norm(hidden)
print(f"linear output: {hidden.dtype}; RMSNorm output: {normed.dtype}")

# %% [markdown]
# (The output is float32 because the gain is a float32 parameter: bfloat16 times float32 gives
# float32. The next matrix multiplication under autocast casts it back to bfloat16.)
#
# How much does the float32 detour buy? Look at the one number the norm computes per vector,
# its RMS. We compute it for the same bfloat16 vectors (width 4,096) in bfloat16 and in
# float32, and compare each with float64. (The entries are drawn from a grid of sixteenths
# between -2 and 2, so that every sum below is exact whatever order a CPU adds in, and the
# printed errors are the same on every machine.)

# %%
hidden_bf16 = (torch.randint(-32, 33, (64, 4096)) / 16).bfloat16()
exact_rms = rms(hidden_bf16.double())
error_bf16 = ((rms(hidden_bf16).double() - exact_rms).abs() / exact_rms).max().item()
error_float32 = ((rms(hidden_bf16.float()).double() - exact_rms).abs() / exact_rms).max().item()
print(f"largest relative error of the RMS: {error_bf16:.1e} in bfloat16, "
      f"{error_float32:.1e} in float32")

# %%
assert error_bf16 > 1e-3 > 1e-6 > error_float32

# %% [markdown]
# In bfloat16 every intermediate (each square, the mean, the root) is rounded to 8 bits, and
# the RMS is off by a few tenths of a percent, an error that then scales every entry of the
# normalised vector; in float32 only the final result is rounded. With float16, the other
# 16-bit format, it is worse: its largest number is 65,504, so any activation above 256
# overflows when squared and the RMS becomes infinite.

# %%
large = torch.full((1, 8), 300.0)
print(f"300**2 in float16: {large.half().pow(2)[0, 0].item()}; "
      f"RMS in float16: {rms(large.half()).item()}; "
      f"library RMSNorm on float16 input: {RMSNorm(8)(large.half())[0, :3].tolist()}")

# %%
assert torch.isinf(large.half().pow(2)).all() and torch.isinf(rms(large.half())).all()
torch.testing.assert_close(RMSNorm(8)(large.half()).float(), torch.ones(1, 8))

# %% [markdown]
# ## Measured: what this choice buys
#
# Chapter 12 measures this choice on the book's own task: LayerNorm in place of RMSNorm changes
# validation bits per byte by +0.003, well inside the seeds' spread (about ±0.005). RMSNorm is
# chosen for its cost, not for a better loss. These are runs of chapter 7's 300 steps from three
# seeds each, so they measure a short run, not where a long one ends up.

# %% [markdown]
# ## Exercises
#
# Exercise 1 asked for `rms_norm`, above; the others follow. The worked answers are in
# `notebooks/solutions/02_embeddings_rmsnorm_solutions.ipynb`.
#
# **Exercise 2.** The book's model (`book.BOOK_MODEL`) has 4 blocks of width 128. Each block
# has two RMSNorms (one before attention, one before the feed-forward layer), and one more
# sits before the output layer. How many parameters do all its norms hold? How many would
# LayerNorms hold in the same places?

# %%
rms_norm_parameters = ...  # your answer: a whole number
layer_norm_parameters = ...  # your answer: a whole number

# %%
ch02.exercise_2(rms_norm_parameters, layer_norm_parameters)

# %% [markdown]
# **Exercise 3 (experiment).** The chapter showed that RMSNorm ignores the *scale* of its
# input. What about a *shift*? Add `shift` to every feature of the vectors `x` below and
# measure how far each norm's output moves: the largest absolute difference between
# `norm(x + shift)` and `norm(x)`, for `shift_rms_norm` and for `shift_layer_norm` (gain 1, no
# bias). The check receives `x` and `shift` too, and measures again to compare.

# %%
torch.manual_seed(0)
x = torch.randn(8, width)
shift = 5.0
shift_rms_norm, shift_layer_norm = RMSNorm(width), nn.LayerNorm(width)
rms_norm_shift_change = ...  # your measurement: a number
layer_norm_shift_change = ...  # your measurement: a number

# %%
ch02.exercise_3(x, shift, rms_norm_shift_change, layer_norm_shift_change)

# %% [markdown]
# **Exercise 4 (experiment).** Normalisation is not the only way to keep a residual stream in
# check. GPT-2 also (beside its LayerNorms) shrinks the initial weights of the layers that write
# into the stream by $1/\sqrt{2 \cdot \text{layers}}$, two branches per block. Copy
# `stream_rms_by_depth` under a new name and change it so that the stack *without* normalisation
# divides every random weight by $\sqrt{2 \cdot 24}$ (as if its 24 layers were the blocks of a
# 24-block GPT-2), keeping its seeded random draws as they are. Run 24 layers of width 256 and hand
# in the whole list it returns, the RMS before the first layer and after each one; the check runs
# the same seeded stack and compares every entry. How does the last entry compare with the RMS
# without normalisation printed above?

# %%
scaled_init_rms_by_layer = ...  # your measurement: a list of 25 numbers

# %%
ch02.exercise_4(scaled_init_rms_by_layer)

# %% [markdown]
# **Exercise 5.** A vector whose entries are all equal, say $[-2, -2, -2, -2]$: what does
# RMSNorm (gain 1) return for it, and what does LayerNorm ($\gamma = 1$, $\beta = 0$) return?
# Which of the two throws away all the information in such a vector?

# %%
rms_norm_of_constant = ...  # your answer: a list of four numbers
layer_norm_of_constant = ...  # your answer: a list of four numbers

# %%
ch02.exercise_5(rms_norm_of_constant, layer_norm_of_constant)

# %% [markdown]
# ## What we built, and where it lives in the library
#
# | from scratch in this chapter | in `transformer_lib` |
# |---|---|
# | one-hot @ $E$ = embedding lookup | `Transformer.embed_tokens` (`nn.Embedding`), tied to `lm_head` |
# | `LayerNormFromScratch` | `ModelConfig(norm="layer")`, a bias-free LayerNorm for chapter 12's comparison; the book's model has none (PyTorch's `F.layer_norm` was our reference) |
# | your `rms_norm` (exercise 1) | `rmsnorm.rms_norm` (float32 inside, a hand-written backward) and the module `rmsnorm.RMSNorm` |
# | pre-norm residual stream | `block.Block`: `x + attn(norm(x))`, `x + mlp(norm(x))` (chapter 6) |
#
# The vectors leaving the embedding do not yet know *where* in the sequence their token sits.
# Chapter 3 adds position, by rotating them.
