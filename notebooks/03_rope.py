# %% [markdown]
# # 3. Rotary position embeddings
#
# Attention compares every token with every other token, but on its own it has no idea where
# any of them sit in the sentence. This chapter gives the model a sense of order the way Llama
# does: **rotary position embeddings** (RoPE, Su et al., 2021). Instead of adding a position
# vector to each token, RoPE *rotates* the query and key vectors by an angle that grows with the
# position, so that the attention score between two tokens depends only on how far apart they
# are.
#
# What you will build:
#
# - the 2-D rotation at the heart of RoPE, as a matrix and as a complex number;
# - the table of rotation speeds, one per pair of dimensions, and what their wavelengths mean;
# - RoPE's `cos`/`sin` tables and the rotation `apply_rope`, which you write yourself
#   (exercises 1 and 2) and check against `transformer_lib.model.rope`;
# - numerical proofs of its two key properties: scores depend only on relative position, and
#   vector lengths are preserved;
# - the two pairing conventions found in real checkpoints, and the permutation between them;
# - a measurement of what RoPE does *not* give for free: the book's stored model, trained on
#   256-token windows, read at positions up to 512.
#
# Notation, kept the same in chapter 4: $C$ is the model width (`d_model`), $D$ the width of one
# attention head, $T$ the number of positions. Vectors are columns, so a matrix acts on the
# left: a rotation is $R\,q$ and a projection is $q = W_Q\,x$, with $W_Q$ laid out as
# `nn.Linear` stores its weight (outputs by inputs). Tensors hold one token per row, so for a
# stack of tokens $X$ (one row each) the same projection reads $Q = X W_Q^\top$, in code
# `x @ w_q.T`.

# %%
import math

import torch

from transformer_lib.book import viz
from transformer_lib.book.exercises import ch03
from transformer_lib.book.pieces import keep
from transformer_lib.book.widgets import RopeExplorer
from transformer_lib.model import rope  # the library's RoPE, used as rope.apply_rope etc.

_ = torch.manual_seed(0)  # every random draw below is reproducible

# %% [markdown]
# ## Attention alone cannot see order
#
# An attention score is a dot product between a query and a key. If the vectors carry no
# position information, the score between "cat" and "sat" is the same wherever the two words
# appear. Shuffling the tokens only shuffles the rows and columns of the score matrix: the
# model sees a bag of words, not a sentence. Below, five random token vectors are scored
# against each other before and after a shuffle.

# %%
tokens = torch.randn(5, 16)  # five token vectors of width 16
scores = tokens @ tokens.T  # (5, 5): every token dotted with every token
shuffle = torch.tensor([3, 0, 4, 1, 2])
shuffled_scores = tokens[shuffle] @ tokens[shuffle].T
same_scores = torch.allclose(shuffled_scores, scores[shuffle][:, shuffle])
print("scores after the shuffle equal the old scores, re-indexed:", same_scores)

# %% [markdown]
# Nothing in that computation knows which token came first. Position must be injected somehow.

# %%
assert same_scores

# %% [markdown]
# ## Absolute position embeddings, and where they fall short
#
# GPT-2 learns a table of position vectors $p_0, p_1, \dots$ and adds $p_m$ to the token at
# position $m$; the original Transformer added fixed sine waves instead. Two things go wrong.
#
# 1. **A fixed range.** A learned table has one row per position it was trained on. A model
#    with 1024 rows has nothing to add at position 1024. (RoPE, below, has an angle for every
#    position. Whether a model can make use of positions it never saw in training is another
#    question, measured at the end of this chapter.)
# 2. **Distance is mixed with place.** The score between a token $x$ at position $m$ and a
#    token $y$ at position $n$ expands into four terms:
#    $$(x + p_m)\cdot(y + p_n) = x\cdot y + x\cdot p_n + p_m\cdot y + p_m \cdot p_n .$$
#    For sine waves the last term depends only on $n - m$, but the two cross terms depend on
#    where the pair sits. The same two words, three tokens apart, score differently at the
#    start of a text and in its middle; the model has to learn to cancel that.
#
# Let us check the second point with the sinusoidal table of the original Transformer,
# $p_{m,2i} = \sin(m\,\omega_i)$ and $p_{m,2i+1} = \cos(m\,\omega_i)$ with
# $\omega_i = 10000^{-2i/C}$, for vectors of width $C$.

# %%
def sinusoidal_table(num_positions: int, width: int) -> torch.Tensor:
    """The original Transformer's position vectors, (num_positions, width)."""
    omegas = 10000.0 ** (-torch.arange(0, width, 2).float() / width)  # (width/2,)
    angles = torch.outer(torch.arange(num_positions).float(), omegas)  # (P, width/2)
    table = torch.zeros(num_positions, width)
    table[:, 0::2], table[:, 1::2] = angles.sin(), angles.cos()
    return table


positions_table = sinusoidal_table(64, 16)
word_x, word_y = torch.randn(16), torch.randn(16)


def additive_score(m: int, n: int) -> float:
    """Score of word_x at position m against word_y at position n, with added positions."""
    return float((word_x + positions_table[m]) @ (word_y + positions_table[n]))


print(f"x at 2,  y at 5:  {additive_score(2, 5):.4f}")
print(f"x at 40, y at 43: {additive_score(40, 43):.4f}")

# %% [markdown]
# Same two words, same distance of three tokens, two different scores.

# %%
assert abs(additive_score(2, 5) - additive_score(40, 43)) > 0.1

# %% [markdown]
# ## Rotating a pair of numbers
#
# RoPE starts from a simple fact about rotations in the plane. The matrix
#
# $$R(\varphi) = \begin{pmatrix} \cos\varphi & -\sin\varphi \\ \sin\varphi & \cos\varphi
# \end{pmatrix}$$
#
# turns a 2-D vector by the angle $\varphi$. Rotations keep lengths, undo each other
# ($R(\varphi)^\top = R(-\varphi)$) and add up ($R(a)\,R(b) = R(a+b)$). Now rotate a query $q$
# by $m\theta$ (its position $m$ times a fixed angle $\theta$) and a key $k$ by $n\theta$:
#
# $$\big(R(m\theta)\,q\big)\cdot\big(R(n\theta)\,k\big)
#   = q^\top R(m\theta)^\top R(n\theta)\, k = q^\top R\big((n-m)\theta\big)\, k .$$
#
# The absolute positions cancel; only the offset $n - m$ is left. That is the whole idea.
# Here it is with the matrix, for a query at 3 and a key at 7, then both moved 10 places on.

# %%
def rotation_matrix(angle: float) -> torch.Tensor:
    """The 2x2 matrix that turns a 2-D vector counter-clockwise by `angle` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]])


theta = 0.3  # radians per position, for this example
q2, k2 = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.5])


def rotated_score(m: int, n: int) -> float:
    """q2 rotated for position m, dotted with k2 rotated for position n."""
    return float((rotation_matrix(m * theta) @ q2) @ (rotation_matrix(n * theta) @ k2))


print(f"q at 3,  k at 7:  {rotated_score(3, 7):.4f}")
print(f"q at 13, k at 17: {rotated_score(13, 17):.4f}")

# %% [markdown]
# The two scores agree, and both equal $q^\top R(4\theta)\,k$, the rotation by the offset alone:

# %%
by_offset_only = float(q2 @ rotation_matrix(4 * theta) @ k2)
assert math.isclose(rotated_score(3, 7), rotated_score(13, 17), abs_tol=1e-5)
assert math.isclose(rotated_score(3, 7), by_offset_only, abs_tol=1e-5)

# %% [markdown]
# ### The same rotation with complex numbers
#
# Read a pair $(a, b)$ as the complex number $z = a + ib$. Multiplying by $e^{i\varphi}$ turns
# it by $\varphi$, and the dot product of two pairs is $\operatorname{Re}(z_q\,\overline{z_k})$.
# The cancellation becomes one line of algebra:
#
# $$\operatorname{Re}\big(z_q e^{im\theta}\,\overline{z_k e^{in\theta}}\big)
#   = \operatorname{Re}\big(z_q\,\overline{z_k}\,e^{i(m-n)\theta}\big).$$
#
# This is how the RoFormer paper and Meta's Llama code write RoPE. The code below rotates with
# `torch.polar` (a complex number from a length and an angle) and gets the same score as the
# matrix version.

# %%
def complex_score(m: int, n: int) -> float:
    """rotated_score computed with complex multiplication instead of a matrix."""
    z_q, z_k = torch.complex(q2[0], q2[1]), torch.complex(k2[0], k2[1])
    turn_q = torch.polar(torch.tensor(1.0), torch.tensor(m * theta))  # e^{i m theta}
    turn_k = torch.polar(torch.tensor(1.0), torch.tensor(n * theta))
    return float((z_q * turn_q * (z_k * turn_k).conj()).real)


assert math.isclose(complex_score(3, 7), rotated_score(3, 7), abs_tol=1e-5)

# %% [markdown]
# ## Many pairs, many speeds
#
# A head vector has $D$ dimensions, not two. RoPE splits it into $D/2$ pairs and rotates each
# pair with its own speed. Pair $i$ (for $i = 0, \dots, D/2 - 1$) turns by
#
# $$\theta_i = \text{base}^{-2i/D} \text{ radians per position}, \qquad \text{base} = 10000
# \text{ in Llama 1 and 2}.$$
#
# Pair 0 turns one radian per token; each later pair is slower by a constant factor. The
# **wavelength** of pair $i$, the number of tokens it takes to turn all the way round, is
#
# $$\lambda_i = \frac{2\pi}{\theta_i} = 2\pi\,\text{base}^{2i/D}.$$
#
# So the pairs behave like the hands of a clock: fast pairs tell apart neighbouring tokens but
# repeat every few tokens, slow pairs barely move between neighbours but stay unambiguous over
# thousands of tokens. Together they locate an offset at every scale. For $D = 64$:

# %%
head_dim, base = 64, 10000.0
speeds = rope.rope_frequencies(head_dim, base).double()  # theta_i, radians per token
wavelengths = 2 * math.pi / speeds  # tokens per full turn
for i in (0, 1, 8, 16, 24, 31):
    print(f"pair {i:2d}: {speeds[i]:.6f} rad/token, one turn every {wavelengths[i]:10.1f} tokens")

# %% [markdown]
# Pair 0's wavelength is exactly $2\pi$, the wavelengths grow monotonically, and even the
# slowest pair stays below $2\pi \cdot \text{base}$:

# %%
assert math.isclose(wavelengths[0], 2 * math.pi)
assert bool((wavelengths[1:] > wavelengths[:-1]).all())
assert wavelengths[-1] < 2 * math.pi * base

# %% [markdown]
# The spectrum on a log scale is a straight line: each pair is slower than the previous one by
# the factor $\text{base}^{2/D}$. The base sets how far the slowest pairs stretch. Llama 3
# raised it to 500,000 for long contexts; with a context of 512 tokens (the dashed line), the
# pairs above the line never complete a turn inside one sequence, so their angle encodes the
# offset without wrapping round.

# %%
viz.plot_rope_spectrum(head_dim=64, theta=[10000.0, 500000.0], context_length=512)

# %% [markdown]
# The same story, as angle against position: pair 0 wraps round every six tokens or so, pair
# 31 has hardly moved after 64.

# %%
viz.plot_rope_angles(head_dim=64, max_position=64)

# %% [markdown]
# ## Building RoPE
#
# A model applies RoPE to every query and key head at every position, so we precompute the
# angles once. For positions $0, \dots, T-1$ the angle of pair $i$ at position $m$ is
# $m\,\theta_i$: a table of shape $(T, D/2)$, the outer product of the positions and the
# speeds. Its cosines and sines are all that the rotation needs.
#
# Which dimensions form a pair is a convention. This library follows Hugging Face's Llama and
# pairs dimension $i$ with dimension $i + D/2$: the **split-halves** layout. (The other layout
# comes at the end of the chapter.) So the tables are widened to $(T, D)$ by repeating the
# angles: column $i$ and column $i + D/2$ hold the same angle, that of pair $i$.
#
# **Exercise 1.** Write `rope_tables`. Each exercise in this book has a cell for your answer,
# which starts out holding a placeholder (`...`), and a check cell that prints
# `not attempted yet`, `correct`, or `not yet` with a hint; the worked answers are in
# `notebooks/solutions/03_rope_solutions.ipynb`. The check compares your tables with the
# library's `rope.rope_tables` for several head sizes, lengths and bases. When it prints
# `correct`, the cell after it keeps your function for chapter 6, which assembles your pieces
# into a model. Chapter 6 reads back each function's source alone, with `torch`, `math` and
# `F` at hand, so write any helper inside the function (as for `apply_rope` below).

# %%
def rope_tables(head_dim: int, max_seq_len: int,
                theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * theta_i for positions 0 .. max_seq_len - 1 and the head_dim/2
    speeds theta_i = theta^(-2i/head_dim): each (max_seq_len, head_dim), float32, split-halves
    layout (columns i and i + head_dim/2 hold pair i's angle)."""
    ...  # your code here


# %%
ch03.exercise_1(rope_tables)

# %%
keep(rope_tables)

# %% [markdown]
# Now the rotation. Pair $i$ of a vector, $(a, b) = (x_i, x_{i+D/2})$, turned by its angle
# $\varphi$ becomes
# $$(a\cos\varphi - b\sin\varphi,\; b\cos\varphi + a\sin\varphi),$$
# the matrix $R(\varphi)$ from above applied to the pair. Every pair of every head at every
# position turns at once: `x` holds queries or keys of shape (batch, heads, positions, head
# dim) and the tables one row per position, so no loop is needed, and no matrix either.
#
# **Exercise 2.** Write `apply_rope(x, cos, sin)`. The check runs it against the library's
# `rope.apply_rope` on random query-like tensors of several shapes with the library's tables,
# compares the outputs and the gradient that reaches `x`, in float32 and in bfloat16 (where,
# like the library, it should compute in `x`'s dtype and return that dtype).

# %%
def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every pair (x_i, x_(i+D/2)) of x (B, H, T, D) by its position's angle; cos and
    sin are (T, D) tables in the split-halves layout. Returns (B, H, T, D) in x's dtype."""
    ...  # your code here


# %%
ch03.exercise_2(apply_rope)

# %%
keep(apply_rope)

# %% [markdown]
# From here on the chapter uses the library's `rope.rope_tables` and `rope.apply_rope`. One
# check ties the fast form back to the rotation matrix: pair 0 at position 5 turned by the
# matrix $R(5\theta_0)$ equals what `rope.apply_rope` produces.

# %%
x = torch.randn(2, 3, 10, 16)  # (B, H, T, D)
lib_cos, lib_sin = rope.rope_tables(16, 10)
rotated = rope.apply_rope(x, lib_cos, lib_sin)[0, 0, 5]  # batch 0, head 0, position 5: (D,)
pair_before = torch.stack([x[0, 0, 5, 0], x[0, 0, 5, 8]])  # dimensions 0 and 0 + D/2
pair_after = torch.stack([rotated[0], rotated[8]])
torch.testing.assert_close(pair_after, rotation_matrix(5 * 1.0) @ pair_before)  # theta_0 = 1
print("pair 0 at position 5: rope.apply_rope equals the rotation matrix R(5)")

# %% [markdown]
# ## Watching a pair turn
#
# Put the vector $(1, 0)$ in pair 0 and draw it at positions 0 to 8: each token turns it by
# one more radian, a bit under a sixth of a circle.

# %%
viz.plot_rope_rotation(head_dim=64, pair=0, positions=range(9))

# %% [markdown]
# Explore it yourself: the slider on the left moves the position, the one on the right picks
# the pair. Pair 0 races round the circle; by pair 16 a step of one token is a small nudge; by
# pair 31 the arrow hardly moves even at position 64. (In a static copy of this page you see
# the starting picture.)

# %%
explorer = RopeExplorer(head_dim=64, max_position=64, position=8, pair=0)
explorer

# %% [markdown]
# The explorer keeps the angle it drew. At position 8, pair 0 has turned 8 radians, which is
# $8 - 2\pi \approx 1.717$ once wrapped into $(-\pi, \pi]$:

# %%
print(f"angle of pair 0 at position 8: {explorer.angle:.3f} rad")
assert math.isclose(explorer.angle, 8 - 2 * math.pi, abs_tol=1e-4)

# %% [markdown]
# ## Only the distance matters
#
# Now the property that makes RoPE worth the trouble, on full 64-dimensional vectors. Rotate
# a query for position $m$ and a key for position $n$, take their dot product, then shift both
# positions by the same amount $s$. The score should not change, however far we shift.

# %%
cos64, sin64 = rope.rope_tables(64, 1100)
query, key = torch.randn(64), torch.randn(64)


def at_position(vector: torch.Tensor, position: int) -> torch.Tensor:
    """A (D,) vector rotated by RoPE for one position."""
    one = vector.view(1, 1, 1, -1)  # (B=1, H=1, T=1, D)
    return rope.apply_rope(one, cos64[position:position + 1],
                           sin64[position:position + 1]).view(-1)


shifted_scores = {}
for shift in (0, 10, 100, 1000):
    shifted_scores[shift] = float(at_position(query, 3 + shift) @ at_position(key, 10 + shift))
    print(f"query at {3 + shift:4d}, key at {10 + shift:4d}: score {shifted_scores[shift]:.3f}")

# %% [markdown]
# All four agree (to float32 rounding, which grows slowly with the angle).

# %%
for score in shifted_scores.values():
    assert math.isclose(score, shifted_scores[0], abs_tol=1e-4)

# %% [markdown]
# Rotations never stretch a vector, so RoPE leaves every query and key with the length it had.
# Attention logits keep the scale the projections gave them, at every position.

# %%
batch = torch.randn(2, 4, 1100, 64)  # (B, H, T, D)
rotated_batch = rope.apply_rope(batch, cos64, sin64)
torch.testing.assert_close(rotated_batch.norm(dim=-1), batch.norm(dim=-1))
print("norms preserved at all 1100 positions")

# %% [markdown]
# What does the score do as the distance grows? Take the same vector as query (at position 0)
# and key (at position $r$). For the all-ones vector the score is
# $\sum_i 2\cos(r\,\theta_i)$: at $r = 0$ every pair agrees, and as $r$ grows the pairs drift
# out of phase, so the score tends to shrink with distance (with ripples). A random vector
# shows a noisier version of the same tendency. This "long-range decay" is a mild bias toward
# nearby tokens that the model can learn to override, not a hard rule.

# %%
viz.plot_rope_similarity(head_dim=64, max_distance=256)

# %% [markdown]
# ## Two ways to pair the dimensions
#
# Pairing $i$ with $i + D/2$ is one choice. Meta's original Llama code and llama2.c pair *adjacent*
# dimensions $(2i, 2i+1)$ instead, the **interleaved** layout; Meta's code rotates with complex
# numbers, llama2.c writes the same product with cos and sin. Both use the same speeds $\theta_i$
# for pair $i$. For $D = 8$:

# %%
D = 8
halves_pairs = [(i, i + D // 2) for i in range(D // 2)]
interleaved_pairs = [(2 * i, 2 * i + 1) for i in range(D // 2)]
print("split halves (Hugging Face):", halves_pairs)
print("interleaved (Meta, llama2.c):", interleaved_pairs)

# %% [markdown]
# The two are the same rotation in a different coordinate order. Reorder an interleaved vector
# so that its even dimensions come first and its odd ones second, and pair $i$ lands in
# dimensions $(i, i + D/2)$. Call that reordering `to_halves`. Rotating the interleaved way and
# then reordering equals reordering and then rotating the split-halves way:

# %%
to_halves = torch.cat([torch.arange(0, D, 2), torch.arange(1, D, 2)])  # [0, 2, 4, 6, 1, 3, 5, 7]
v = torch.randn(1, 1, 6, D)  # (B, H, T, D), interleaved order
cos8, sin8 = rope.rope_tables(D, 6)
rotated_meta_way = rope.apply_rope_interleaved(v, torch.arange(6), theta=10000.0)
torch.testing.assert_close(rotated_meta_way[..., to_halves],
                           rope.apply_rope(v[..., to_halves], cos8, sin8))
print("to_halves:", to_halves.tolist())

# %% [markdown]
# In a model, queries and keys come out of the projections $q = W_Q x$ and $k = W_K x$.
# Reordering the output dimensions of $q$ means reordering the *rows* of $W_Q$, head by head.
# `rope.interleaved_to_halves` does exactly that, and `rope.halves_to_interleaved` undoes it. This is how a
# checkpoint trained with Meta's code is loaded into a split-halves model: permute the rows of
# $W_Q$ and $W_K$ once, and nothing else changes. The values and the output projection need no
# change, because RoPE never touches them, and the attention scores are dot products, which do
# not care in which order the coordinates are listed as long as query and key agree.
#
# The check: random Meta-layout projections for 4 heads; scores computed the Meta way (complex
# rotation on interleaved pairs) and the Hugging Face way (permuted weights, split-halves
# rotation) must be the same.

# %%
num_heads, head_dim8, d_in, seq = 4, 8, 32, 6
w_q_meta = torch.randn(num_heads * head_dim8, d_in)
w_k_meta = torch.randn(num_heads * head_dim8, d_in)
hidden = torch.randn(seq, d_in)  # six token vectors


def heads(projected: torch.Tensor) -> torch.Tensor:
    """(T, H*D) -> (H, T, D)."""
    return projected.view(seq, num_heads, head_dim8).transpose(0, 1)


q_meta = rope.apply_rope_interleaved(heads(hidden @ w_q_meta.T), torch.arange(seq), 10000.0)
k_meta = rope.apply_rope_interleaved(heads(hidden @ w_k_meta.T), torch.arange(seq), 10000.0)
scores_meta = q_meta @ k_meta.transpose(-2, -1)  # (H, T, T)

w_q_hf = rope.interleaved_to_halves(w_q_meta, num_heads)
w_k_hf = rope.interleaved_to_halves(w_k_meta, num_heads)
q_hf = rope.apply_rope(heads(hidden @ w_q_hf.T), cos8, sin8)
k_hf = rope.apply_rope(heads(hidden @ w_k_hf.T), cos8, sin8)
scores_hf = q_hf @ k_hf.transpose(-2, -1)  # (H, T, T)

torch.testing.assert_close(scores_hf, scores_meta, rtol=1e-4, atol=1e-4)
torch.testing.assert_close(rope.halves_to_interleaved(w_q_hf, num_heads), w_q_meta)
print("identical attention scores in both conventions; the permutation round-trips")

# %% [markdown]
# Forgetting this permutation is a classic bug when porting weights: the model still runs,
# but every query and key pair is rotated as if it were two unrelated dimensions, and the text
# it generates is nonsense.

# %% [markdown]
# ## Reading past the training length
#
# RoPE has an angle for every position, so unlike a learned table it never runs out of rows.
# Does that let a model read texts longer than the ones it was trained on? We can measure it.
# The book's stored model (`book.stored_model()`, trained once and shipped with the library;
# chapter 7 shows how such a model is trained) saw windows of 256 tokens only. Its RoPE tables
# are non-persistent buffers built from `config.max_seq_len`, not weights, so we build a model
# with the same configuration but `max_seq_len=512`, load the stored weights into it, and score
# validation text in windows of 512 tokens: the loss at each position, averaged over the
# windows.
#
# **The loss** is how this book scores a model on text, and what chapter 7 trains it to
# lower. At each position the model gives every id of its vocabulary a probability of being
# the next token; the loss there is $-\ln p$, the negative log-probability it gave to the token
# that actually comes next. Averaged over positions, it is measured in *nats* because the
# logarithm is natural ($\log_2$ would give bits). A model that is sure and right scores 0; one
# that spreads its probability evenly over the 2,048 ids scores $\ln 2048 \approx 7.62$ at
# every position. Lower is better. PyTorch's `F.cross_entropy(logits, targets)` computes it
# from the model's scores.

# %%
import dataclasses

import torch.nn.functional as F

from transformer_lib import Transformer, book

stored = book.stored_model()
long_config = dataclasses.replace(stored.model.config, max_seq_len=512)
long_model = Transformer(long_config).eval()
long_model.load_state_dict(stored.model.state_dict())  # the weights; RoPE tables are rebuilt
print(f"trained with max_seq_len {stored.model.config.max_seq_len}, "
      f"RoPE tables now cover {long_model.rope_cos.shape[0]} positions")

# %%
uniform_logits = torch.zeros(1, 2048)  # equal scores: every id gets probability 1/2048
print(f"a uniform guess: {F.cross_entropy(uniform_logits, torch.tensor([42])).item():.2f} nats")
assert math.isclose(F.cross_entropy(uniform_logits, torch.tensor([42])).item(), math.log(2048),
                    rel_tol=1e-6)

# %%
validation_ids = torch.from_numpy(
    book.book_tokens("validation", stored.tokenizer).tokens.astype("int64"))
num_windows, window = 24, 512
windows = validation_ids[:num_windows * (window + 1)].view(num_windows, window + 1)
with torch.no_grad():
    logits = long_model(windows[:, :-1])  # (windows, 512, vocab): predict the next token
    loss = F.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none")  # (W, 512)
loss_per_position = loss.mean(dim=0)  # (512,): nats per token at each position
seen, unseen = loss_per_position[:256], loss_per_position[256:]
print(f"mean loss at positions   0-255 (seen in training): {seen.mean():.2f} nats/token")
print(f"mean loss at positions 256-511 (never seen):       {unseen.mean():.2f} nats/token")

# %% [markdown]
# The two halves of the window, drawn in two colours; the loss is averaged over the 24 windows,
# and also over 16 neighbouring positions so that the curve is readable:

# %%
smooth = loss_per_position.view(-1, 16).mean(dim=1)  # (32,): one point per 16 positions
centres = torch.arange(32) * 16 + 7.5
viz.plot_lines(centres, {"positions seen in training": torch.where(centres < 256, smooth,
                                                                   float("nan")),
                         "positions beyond the training length": torch.where(
                             centres >= 256, smooth, float("nan"))},
               title="The stored model (trained on 256-token windows) read up to 512 tokens",
               xlabel="position in the window (tokens)",
               ylabel="validation loss (nats/token)")

# %% [markdown]
# Within the training length the loss falls over the first few dozen positions (more context
# helps), then levels off, far below the 7.62 nats of a uniform guess. Past position 256 it
# holds for a few dozen positions more, then climbs: every point from about position 336 on
# lies above every point between positions 32 and 255, and the mean over positions 256 to 511,
# printed above, is higher than within the training length.
#
# RoPE had an angle ready for every one of those positions, and scores still depend only on
# offsets. But in training no query ever met a key more than 255 tokens back; at position 400 a
# query meets keys up to 400 back, turned by angles (in the slow pairs) the model never learned
# to read. The first positions past 256 still do well because what a token needs most is
# usually close by. **RoPE makes positions relative; it does not by itself teach a model
# distances it never saw.** Models that serve long contexts are trained or fine-tuned at that
# length, often with a larger base or with rescaled angles.

# %%
assert unseen.mean() > seen.mean() + 0.1 and seen.mean() < math.log(2048) / 2
assert smooth[21:].min() > smooth[2:16].max()  # points centred at 343.5+ vs 39.5 to 247.5

# %% [markdown]
# ## Measured: what this choice buys
#
# Chapter 12 measures this choice on the book's own task: learned absolute positions are +0.39 and
# sinusoidal positions +0.42 bits per byte worse than RoPE, far beyond the seeds' spread; no
# positions at all (+0.085) is worse too, but better than either table added to the embedding,
# since a causal model can count positions from its mask. These are runs of chapter 7's 300
# steps from three seeds each, so they measure a short run, not where a long one ends up.

# %% [markdown]
# ## Exercises
#
# Exercises 1 and 2 asked for `rope_tables` and `apply_rope`, above; the others follow. The
# worked answers are in `notebooks/solutions/03_rope_solutions.ipynb`.
#
# **Exercise 3.** Only the offset between a query and a key matters. Write
# `relative_score(query, key, offset)`, the RoPE score of a query and a key that sit `offset`
# positions apart (the key later), for 1-D vectors of any even length, using the library's
# `rope.apply_rope` and `rope.rope_tables` but *no* position of the query. The check compares
# it with the score of the two vectors placed at real positions.

# %%
def relative_score(query: torch.Tensor, key: torch.Tensor, offset: int) -> float:
    """The score of `query` against `key` placed `offset` positions after it."""
    ...  # your code here


# %%
ch03.exercise_3(relative_score)

# %% [markdown]
# **Exercise 4 (experiment: change $\theta$).** Write `turning_pairs(head_dim, base,
# context_length)`: the indices of the pairs that complete at least one full turn within
# `context_length` tokens (wavelength at most the context length). Then use it on the stored
# model's heads ($D = 32$, context 256) with the base it was trained with, 10,000, and with
# Llama 3's 500,000. Which pairs stop turning inside the context when the base grows, and what
# could those pairs still tell the model about distance?

# %%
def turning_pairs(head_dim: int, base: float, context_length: int) -> list[int]:
    """Indices of the RoPE pairs whose wavelength is at most context_length tokens."""
    ...  # your code here


# %%
ch03.exercise_4(turning_pairs)

# %% [markdown]
# **Exercise 5 (experiment: change $\theta$ after training).** The stored model was trained
# with base 10,000. Build a copy with `rope_theta=500000.0` (as above: replace the field of the
# config, build a `Transformer`, load the stored weights), and measure the mean validation loss
# of both models on the same windows of 256 tokens: cut at least 8 windows of 257 consecutive
# tokens from `validation_ids` (inputs and the next token of each), as the chapter cut its
# windows of 512. Hand in the windows and both losses, keyed by the base; the check scores
# your windows with both models again and compares. Before you run it: should the loss go up
# or down, and why?

# %%
theta_windows = ...  # your windows: a tensor of shape (N, 257)
losses = ...  # your measurements: {10000.0: loss, 500000.0: loss}, in nats per token

# %%
ch03.exercise_5(theta_windows, losses)

# %% [markdown]
# ## What we built, and where it lives in the library
#
# - **RoPE** rotates each pair of query and key dimensions by position times a per-pair speed
#   $\theta_i = \text{base}^{-2i/D}$, so attention scores depend only on the offset between two
#   tokens, and vector lengths never change.
# - You wrote its two pure functions, `rope_tables` and `apply_rope` (exercises 1 and 2).
#   `transformer_lib.model.rope` holds the library's: `rope_frequencies`, `rope_tables`,
#   `rotate_half`, `apply_rope` (split halves, as in Hugging Face), plus
#   `apply_rope_interleaved` and the weight permutations `interleaved_to_halves` /
#   `halves_to_interleaved` for Meta-layout checkpoints.
# - `Transformer` builds the tables once, for `config.max_seq_len` positions and
#   `config.rope_theta`, and keeps them as non-persistent buffers `rope_cos` and `rope_sin`
#   (they follow the model to the GPU but are not saved with the weights). Each forward pass
#   slices the rows of the positions it processes; with a KV cache those start where the cache
#   ends. The attention layer rotates queries and keys, never values.
# - Because the tables are not weights, a model can be rebuilt with a longer `max_seq_len` (or
#   another `rope_theta`) and the same weights, but it reads positions beyond its training length
#   worse: the stored model's loss rose past position 256.
#
# Next, attention itself puts these rotated queries and keys to work.
