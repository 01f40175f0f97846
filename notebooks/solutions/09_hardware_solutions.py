# %% [markdown]
# # Solutions to chapter 9: Hardware: CPU, CUDA and Apple GPUs
#
# The answers to the exercises of chapter 9, checked with the same functions the chapter calls,
# so every check below prints `correct`. The experiment (exercise 4) is run here, and what it
# measured is stated beside its output.

# %%
import torch

from transformer_lib import ModelConfig, Transformer
from transformer_lib.book.exercises import ch09

_ = torch.manual_seed(0)  # every random draw below is reproducible

# %% [markdown]
# ## Exercise 1
#
# A format with $m$ mantissa bits has a gap of $2^{-m}$ above 1.0 (`eps`), so it holds
# $1 + 2^{-9}$ exactly when $2^{-m} \le 2^{-9}$, i.e. $m \ge 9$: fp32 ($m = 23$) and fp16
# ($m = 10$), not bf16 ($m = 7$), which rounds it to 1.

# %%
formats = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
exact_formats = {name for name, dtype in formats.items() if torch.finfo(dtype).eps <= 2**-9}
print(sorted(exact_formats))

# %%
ch09.exercise_1(exact_formats)

# %% [markdown]
# ## Exercise 2
#
# `--batch-size 126` is the global batch. Three processes take 42 sequences each, and
# `--grad-accum 2` splits each share into two micro-batches of 21, one per forward pass.

# %%
sequences_per_forward = 126 // 3 // 2
ch09.exercise_2(sequences_per_forward)

# %% [markdown]
# ## Exercise 3
#
# The weights take 4 bytes per parameter (`count_parameters` from the chapter, here the built
# model's own count). Each layer's cache holds a key tensor and a value tensor of shape
# (batch, kv heads, positions, head size), 4 bytes per float32 number; with grouped-query
# attention it is the number of *key/value* heads that counts, not the number of query heads.
# What is left after the weights, divided by one sequence's cache and rounded down, is the
# answer; a memory too small for the weights holds none.

# %%
def max_sequences(config: ModelConfig, seq_len: int, memory_bytes: int) -> int:
    """How many sequences of seq_len tokens fit: their float32 KV caches beside the weights."""
    with torch.device("meta"):  # shapes only
        weight_bytes = 4 * Transformer(config).num_parameters()
    per_sequence = 4 * config.num_layers * 2 * config.num_kv_heads * seq_len * config.head_dim
    return max(0, (memory_bytes - weight_bytes) // per_sequence)


with torch.device("meta"):  # shapes only
    shapes = [tuple(buffer.shape) for buffer in
              Transformer(ModelConfig.from_preset("tinystories-cpu")).make_caches(1)[0].buffers()]
print("one layer's cache buffers:", shapes)
print(f"the 22.5M model, 512-token sequences on a 24 GiB GPU: "
      f"{max_sequences(ModelConfig.from_preset('seed-22.5M'), 512, 24 * 2**30):,}")

# %%
ch09.exercise_3(max_sequences)

# %% [markdown]
# ## Exercise 4 (experiment)
#
# Two random $n \times n$ matrices drawn from seed 0, multiplied in fp32 and under bf16
# autocast, each compared with the float64 product of the same matrices.

# %%
def matmul_error(n: int, seed: int = 0) -> tuple[float, float]:
    """Relative error of an n x n product in fp32 and under bf16 autocast, against float64."""
    generator = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, n, generator=generator), torch.randn(n, n, generator=generator)
    exact = a.double() @ b.double()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = a @ b
    return tuple(float((c.double() - exact).norm() / exact.norm()) for c in (a @ b, low))


# NBVAL_IGNORE_OUTPUT
# (the last digits of a float32 sum depend on the CPU's kernels: the next cell asserts what holds)
matmul_errors = {n: matmul_error(n) for n in (16, 64, 256, 512)}
for n, (fp32_error, bf16_error) in matmul_errors.items():
    print(f"n = {n:>4}: fp32 error {fp32_error:.1e}, bf16 error {bf16_error:.1e}")

# %% [markdown]
# The bf16 error is about $3 \times 10^{-3}$ at every size: roughly $2^{-8}$, the rounding of
# one bf16 number, and thousands of times the fp32 error. It does not grow with $n$, because
# autocast rounds only the inputs and the result to bf16; the $n$ products in each entry are
# added up in fp32. The fp32 error, in contrast, grows with $n$ (each extra term adds its
# rounding), but from far lower: below $10^{-6}$ even at $n = 512$.

# %%
fp32_errors = [e for e, _ in matmul_errors.values()]
bf16_errors = [e for _, e in matmul_errors.values()]
assert all(2e-3 < e < 4e-3 for e in bf16_errors)
assert max(bf16_errors) < 1.5 * min(bf16_errors)  # flat in n
assert fp32_errors == sorted(fp32_errors) and max(fp32_errors) < 1e-6  # grows, but stays tiny
print("bf16 error between 2e-3 and 4e-3 at every n:", all(2e-3 < e < 4e-3 for e in bf16_errors))
print("fp32 error grows with n and stays below 1e-6:", fp32_errors == sorted(fp32_errors))
ch09.exercise_4(matmul_errors, seed=0)
