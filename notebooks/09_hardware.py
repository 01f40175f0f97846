# %% [markdown]
# # 9. Hardware: CPU, CUDA and Apple GPUs
#
# The same model code runs on a laptop CPU, an Apple GPU and an NVIDIA GPU. What changes is
# where the tensors live, which number format the arithmetic uses, and how much memory the
# run needs. This chapter explains the choices `transformer_lib` makes on each, and gives you
# the tools to reason about a run before you start it.
#
# What you will learn:
#
# - the device check and precision policy of `transformer_lib.device`, and why it differs
#   between CUDA, Apple MPS and CPU;
# - the number formats fp32, bf16 and fp16: their bits, range and precision;
# - mixed precision with `torch.autocast`: what runs in bf16 and what stays in fp32;
# - `torch.compile`: what it does and what it costs;
# - a memory estimate for a model and its optimizer, written from scratch and checked to the
#   byte against a real AdamW step;
# - scaling out with data parallelism (`torchrun`), and the command that trains the 22.5M
#   model on one GPU;
# - where the time goes: a profile of one training and one decoding step, FLOPs and bytes per
#   token on a roofline, and why a tiny model is overhead-bound.
#
# The printed outputs stored with this notebook come from a CPU-only machine; on a GPU some of
# them differ, as the text says.

# %%
import math
import signal
import time

import torch
import torch.nn.functional as F

from transformer_lib import ModelConfig, Transformer
from transformer_lib.book import viz
from transformer_lib.book.exercises import ch09
from transformer_lib.device import cpu_has_native_bf16, describe, pick_device, pick_precision
from transformer_lib.training.trainer import CLI_RECIPE, TrainConfig, make_optimizer

_ = torch.manual_seed(0)  # every random draw below is reproducible

# %% [markdown]
# ## Which device?
#
# `pick_device()` looks for an accelerator in a fixed order: an NVIDIA GPU through **CUDA**,
# then an Apple GPU through **MPS** (Metal Performance Shaders), then the **CPU**. Passing a
# name (`"cuda"`, `"cuda:1"`, `"mps"`, `"cpu"`) asks for that device and raises an error
# naming the problem if it is absent, instead of silently falling back to a slow CPU run.

# %%
device = pick_device()
print("device:", device)

# %% [markdown]
# `describe(device)` gives the one line that the trainer logs: the GPU's name on CUDA, or the
# number of threads on a CPU. It always starts with the device type.

# %%
assert describe(device).startswith(device.type)

# %% [markdown]
# ## Which precision?
#
# `pick_precision(device)` returns the arithmetic policy. The parameters always stay in
# float32; the policy only says whether matrix multiplications run in bfloat16 under
# autocast (explained below):
#
# | device | default | why |
# |---|---|---|
# | CUDA with bf16 (Ampere, 2020, and later) | bf16 autocast | tensor cores multiply bf16 several times faster than fp32, and bf16 halves memory traffic |
# | CUDA without bf16 (older cards, checked with `torch.cuda.is_bf16_supported()`) | fp32 | fp16 would need loss scaling (a `GradScaler`), which this library leaves out |
# | Apple MPS | fp32 | mixed dtypes failed on MPS in the original design, and autocast there still covers fewer operations |
# | CPU | fp32, bf16 on request | only CPUs with native bf16 instructions gain from it (see the timing below) |
#
# The CPU row is the library's policy for code that does not know the chip it runs on: the
# notebooks, evaluation and generation. The training command is the one exception. With
# `--precision auto`, `tlib-train` requests bf16 on a CPU that multiplies bf16 in hardware
# (`device.cpu_has_native_bf16()`: AMX or AVX-512 BF16 on x86), because on the kind of CPU it
# was tuned on (a recent Intel Xeon with those instructions, see below) a five-minute run
# measured more progress per minute in bf16 than in fp32. Any other CPU emulates bf16, and
# there it is slow: a training step of the book's model took 4.4 s in bf16 against 0.31 s in
# fp32 on a 2-core AMD EPYC with AVX2 only, so `tlib-train` stays in fp32 there. The CPU and
# MPS rows can be checked on any machine, because the policy depends only on the device type:

# %%
precision = pick_precision(device)
print("this machine:", precision.name)
print("mps:", pick_precision(torch.device("mps")).name)
print("cpu:", pick_precision(torch.device("cpu")).name,
      "| cpu, bf16 requested:", pick_precision(torch.device("cpu"), "bf16").name)
try:
    pick_precision(torch.device("mps"), "bf16")
except ValueError as err:
    print("mps, bf16 requested -> ValueError:", err)
print("the train command requests, on a CPU with bf16 in hardware:", CLI_RECIPE["cpu_precision"],
      "| on other CPUs: fp32")

# %% [markdown]
# The trainer wraps each forward pass in `precision.autocast(device)`, which is a no-op for
# fp32. Putting the two together: move the model and its input to the device, run under the
# policy, and look at the dtype of the logits (float32 here; bfloat16 on a recent NVIDIA GPU).

# %%
tiny_config = ModelConfig.from_preset("tiny")
model = Transformer(tiny_config).to(device).eval()
input_ids = torch.randint(0, tiny_config.vocab_size, (2, 16), device=device)
with torch.no_grad(), precision.autocast(device):
    logits = model(input_ids)
print("logits:", tuple(logits.shape), logits.dtype, "on", logits.device.type)

# %%
expected_dtype = torch.bfloat16 if precision.name == "bf16" else torch.float32
assert logits.dtype == expected_dtype and logits.device.type == device.type

# %% [markdown]
# ## Number formats: fp32, bf16 and fp16
#
# A floating-point number is a sign, an exponent (which sets the range) and a mantissa (which
# sets the precision). The three formats in deep learning split their bits differently:
#
# | format | bits | exponent | mantissa | gap above 1.0 | largest value |
# |---|---|---|---|---|---|
# | fp32 (float32) | 32 | 8 | 23 | $2^{-23}$ | $3.4 \times 10^{38}$ |
# | bf16 (bfloat16) | 16 | 8 | 7 | $2^{-7}$ | $3.4 \times 10^{38}$ |
# | fp16 (float16) | 16 | 5 | 10 | $2^{-10}$ | 65504 |
#
# bf16 is fp32 with the mantissa cut short: same range, much less precision. fp16 keeps more
# precision but has a small range. `torch.finfo` knows these facts; the mantissa width is
# $-\log_2$ of `eps` (the gap above 1.0), and the exponent takes the rest.

# %%
formats = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
layout = {}
for name, dtype in formats.items():
    info = torch.finfo(dtype)
    mantissa = int(-math.log2(info.eps))
    layout[name] = (info.bits, info.bits - 1 - mantissa, mantissa)
    print(f"{name}: {info.bits} bits = 1 sign + {layout[name][1]} exponent + {mantissa} mantissa;"
          f" eps = 2^-{mantissa}, max = {info.max:.4g}, smallest normal = {info.tiny:.3g}")

# %%
assert layout == {"fp32": (32, 8, 23), "bf16": (16, 8, 7), "fp16": (16, 5, 10)}
assert torch.finfo(torch.bfloat16).max > 1e38 and torch.finfo(torch.float16).max == 65504

# %% [markdown]
# What that means in practice. Store $1 + 2^{-8}$ in each format: bf16 has only 7 mantissa
# bits, so just above 1 it can hold $1$ and $1 + 2^{-7}$ and nothing in between, and
# $1 + 2^{-8}$ lies exactly halfway. Such a tie is rounded to the neighbour whose last mantissa
# bit is 0 (*round half to even*, the IEEE default), and that neighbour is 1 itself. Store 70,000: fp16 overflows to
# infinity, bf16 rounds to a nearby value. Store $10^{-8}$, the size of a small gradient: fp16
# flushes it to zero, bf16 keeps it.

# %%
def stored(value: float, dtype: torch.dtype) -> float:
    """The number a format actually holds when asked to store `value`."""
    return torch.tensor(value, dtype=torch.float64).to(dtype).item()


for name, dtype in formats.items():
    print(f"{name}: 1 + 2^-8 -> {stored(1 + 2**-8, dtype):.8f}   "
          f"70000 -> {stored(70000.0, dtype):g}   1e-8 -> {stored(1e-8, dtype):.3g}")

# %%
assert stored(1 + 2**-8, torch.float32) == stored(1 + 2**-8, torch.float16) == 1 + 2**-8
assert stored(1 + 2**-8, torch.bfloat16) == 1.0
assert math.isinf(stored(70000.0, torch.float16)) and stored(70000.0, torch.bfloat16) == 70144.0
assert stored(1e-8, torch.float16) == 0.0 and stored(1e-8, torch.bfloat16) > 0.0

# %% [markdown]
# The tie rule shows on its own in the bf16 column: a value halfway between two neighbours goes
# to the *even* one (last mantissa bit 0), up or down, and a value a hair above halfway is
# simply rounded to the nearer neighbour.

# %%
halfway_cases = {"1 + 2^-8 (halfway between 1 and 1 + 2^-7)": 1 + 2**-8,
                 "1 + 3 * 2^-8 (halfway between 1 + 2^-7 and 1 + 2^-6)": 1 + 3 * 2**-8,
                 "1 + 2^-8 + 2^-12 (just above halfway)": 1 + 2**-8 + 2**-12}
for name, value in halfway_cases.items():
    print(f"bf16({name}) = 1 + {round((stored(value, torch.bfloat16) - 1) * 2**7)} * 2^-7")

# %%
assert stored(1 + 2**-8, torch.bfloat16) == 1.0  # down to the even neighbour, 1
assert stored(1 + 3 * 2**-8, torch.bfloat16) == 1 + 2**-6  # up to the even neighbour
assert stored(1 + 2**-8 + 2**-12, torch.bfloat16) == 1 + 2**-7  # not a tie: nearest wins

# %% [markdown]
# Two consequences shape every mixed-precision recipe.
#
# - **fp16 needs loss scaling.** Gradients below about $3 \times 10^{-8}$ (half of fp16's
#   smallest number, $2^{-24} \approx 6 \times 10^{-8}$) round to zero in fp16, so fp16
#   training multiplies the loss by a large factor and divides the gradients back
#   (`torch.amp.GradScaler`). bf16 has fp32's range and needs none of that, which is why this
#   library offers bf16 and not fp16.
# - **Weights stay in fp32.** An update is often a thousand times smaller than the weight it
#   changes. In bf16, $1 + 0.001$ is just 1: the update is lost, every step. So the parameters,
#   their gradients and the optimizer state stay in fp32; only the arithmetic is lowered.

# %%
weight = torch.tensor(1.0, dtype=torch.bfloat16)
print("bf16: 1.0 + 0.001 =", (weight + 0.001).item())
print("fp32: 1.0 + 0.001 =", f"{(weight.float() + 0.001).item():.4f}")
assert (weight + 0.001).item() == 1.0

# %% [markdown]
# ## Mixed precision with `torch.autocast`
#
# `torch.autocast(device_type, dtype=torch.bfloat16)` changes how operations run inside its
# block, not how tensors are stored. Each operation follows a per-device list: matrix
# multiplications (`linear`, `matmul`, attention) cast their inputs to bf16 and return bf16;
# operations that need range or precision, such as the losses, run in fp32; the rest follow
# their inputs. On CUDA the fp32 list is longer (softmax, normalisation layers, exponentials
# and more). `transformer_lib` does not rely on those lists where it matters: RMSNorm computes
# in fp32 internally, the explicit attention path takes its softmax in fp32, and the trainer
# converts the logits to fp32 before the cross-entropy. One exception goes the other way, for
# speed: on a CPU the library runs RoPE and attention in fp32 even under bf16 autocast, because
# PyTorch's CPU flash-attention kernel is slower in bf16 (45.6 against 25.8 ms for a forward and
# backward pass, measured on a 2-core Xeon; `benchmarks/RESULTS.md`).
#
# Here is one training step of the tiny model under bf16 autocast on the CPU. The logits come
# out in bf16, the loss in fp32, the parameters are untouched, and the gradients arrive in
# fp32 to match the parameters they belong to.

# %%
cpu_model = Transformer(tiny_config)
targets = torch.randint(0, tiny_config.vocab_size, (2, 16))
with torch.autocast("cpu", dtype=torch.bfloat16):
    bf16_logits = cpu_model(input_ids.cpu())
    loss = F.cross_entropy(bf16_logits.flatten(0, 1).float(), targets.flatten())
loss.backward()
weight = cpu_model.layers[0].self_attn.q_proj.weight
print("logits:", bf16_logits.dtype, "| loss:", loss.dtype, "| weight:", weight.dtype,
      "| gradient:", weight.grad.dtype)

# %%
assert bf16_logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
assert weight.dtype == torch.float32 and weight.grad.dtype == torch.float32

# %% [markdown]
# Is bf16 faster? On an NVIDIA GPU with tensor cores, yes, several times for large matrix
# multiplications. On a CPU it depends on the chip: recent server CPUs (Intel's AVX-512 BF16
# and AMX instructions, AMD's AVX-512 BF16) and some ARM cores (the `bf16` extension) multiply
# bf16 natively; most laptop CPUs do not, and there the casts make it slower. On Linux the CPU
# lists its instruction sets in `/proc/cpuinfo`, so we can ask which of these it has:

# %%
# NBVAL_IGNORE_OUTPUT
# (a machine description: it differs from CPU to CPU)
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # Intel/AMD AVX-512, Intel AMX, ARM


def native_bf16_flags() -> list[str]:
    """The bf16 instruction-set flags this CPU reports; empty if none or not on Linux."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = set(cpuinfo.read().split())
    except OSError:
        return []
    return [flag for flag in BF16_FLAGS if flag in flags]


print("native bf16 instructions on this CPU:", native_bf16_flags() or "none found")
print("the library's answer, device.cpu_has_native_bf16():", cpu_has_native_bf16())

# %% [markdown]
# We time a 512 × 512 matrix product both ways, on one thread (with several threads, a
# timing on a busy machine mostly measures the wait for the slowest thread); your numbers will
# differ from the stored ones. (On a GPU, operations are queued asynchronously, so a timing must call
# `torch.cuda.synchronize()` or `torch.mps.synchronize()` before reading the clock.)

# %%
def best_time_ms(fn, repeats: int = 10) -> float:
    """Fastest of `repeats` calls of fn() on one thread, in ms (after two warm-up calls)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core: a busy machine disturbs a one-thread timing far less
    try:
        fn(), fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return 1000 * min(times)


a, b = torch.randn(512, 512), torch.randn(512, 512)


def matmul_bf16_autocast() -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return a @ b


matmul_times = {"fp32": best_time_ms(lambda: a @ b),
                "bf16 autocast": best_time_ms(matmul_bf16_autocast)}
for name, ms in matmul_times.items():
    print(f"{name}: {ms:.2f} ms")

# %% [markdown]
# The same two timings as bars. The figure stored with this notebook was made on a 2-core AMD EPYC
# with no bf16 instructions (the flags above: none), and there the bf16 product took tens of times
# as long as the fp32 one: every bf16 multiply is emulated. On a 2-core AMD EPYC (Zen 4) with
# AVX-512-BF16 the same product took 0.46 of the fp32 time (`benchmarks/RESULTS.md`): that is the
# kind of CPU where the training command's bf16 pays off, and the only kind on which it picks bf16.
# To read your own figure: if the bf16 bar is clearly shorter, your CPU multiplies bf16 natively
# and bf16 is worth it; if it is about as long or longer, the casts cost more than they save and
# fp32 is the better choice. (The timings are not compared when the book is tested; only the facts
# asserted below are.)

# %%
viz.plot_bars(matmul_times, title="512 × 512 matmul on one core of this CPU (best of 10)",
              ylabel="milliseconds", annotate="{:.2f} ms")

# %% [markdown]
# Timings vary from machine to machine, so only robust facts are asserted: the product under
# autocast is bf16, and it stays close to the fp32 one (bf16 keeps 2 to 3 significant digits).

# %%
exact, approximate = a @ b, matmul_bf16_autocast()
assert exact.dtype == torch.float32 and approximate.dtype == torch.bfloat16
relative_error = (approximate.float() - exact).norm() / exact.norm()
assert relative_error < 1e-2

# %% [markdown]
# ## `torch.compile`
#
# In eager mode PyTorch runs the model one operation at a time from Python: each element-wise
# step (a multiply in RoPE, a SiLU, a residual add) reads its input from memory and writes its
# output back. `torch.compile(model)` traces the forward pass into a graph (TorchDynamo), then a
# backend, by default **Inductor**, fuses chains of element-wise operations into single kernels
# and generates code for them: Triton kernels on a GPU, C++ with OpenMP on a CPU. The first
# call pays for the compilation; later calls with the same shapes reuse it, and a new shape may
# trigger a recompilation.
#
# On a GPU, compiling a training run typically saves a good share of its time. On a small CPU
# the compilation itself is the problem: generating and compiling C++ takes tens of seconds
# to over a minute the first time (results are cached on disk for next time). So the cell
# below gives it a budget of `COMPILE_BUDGET_S` seconds (enforced with an alarm signal where
# the system has one) and falls back to the eager model if compilation fails or runs over. It
# needs a C++ compiler on a CPU (gcc or clang; on macOS the Xcode command-line tools). Its
# output depends on the machine, so it is not compared when the book is tested.

# %%
# Load the compiler's own Python modules first, so that the budget covers compiling only
# (an import cut off half-way would leave torch.compile broken until the kernel restarts).
import torch._dynamo  # noqa: F401
import torch._inductor.compile_fx  # noqa: F401

COMPILE_BUDGET_S = 30
compile_model = Transformer(tiny_config).eval()
example = torch.randint(0, tiny_config.vocab_size, (2, 16))
with torch.no_grad():
    eager_logits = compile_model(example)  # the reference the compiled model must match

# %% [markdown]
# The helper below arms an alarm for `budget_s` seconds, compiles and runs the model, and
# disarms the alarm. If the alarm goes off first, its handler raises `OverBudget` from inside
# the compiler, and the helper returns `None` instead of the logits, as it does for any error.

# %%
class OverBudget(BaseException):
    """Compilation took longer than the budget.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` inside the
    compiler can swallow it and carry on compiling.
    """


def _over_budget(signum, frame):
    raise OverBudget(f"compilation took over {COMPILE_BUDGET_S} s")


def compiled_forward(module, inputs, budget_s: int):
    """torch.compile `module` and run it once on `inputs`; None if that fails or is too slow."""
    has_alarm = hasattr(signal, "SIGALRM")  # POSIX systems (Linux, macOS); not Windows
    if has_alarm:
        previous_handler = signal.signal(signal.SIGALRM, _over_budget)
        signal.alarm(budget_s)
    try:
        with torch.no_grad():
            return torch.compile(module)(inputs)
    except (Exception, OverBudget):  # no compiler, an unsupported platform, or over budget
        torch.compiler.reset()  # drop any half-finished compilation state
        return None
    finally:
        if has_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous_handler)


# %% [markdown]
# Now compile and run the tiny model's forward pass within the budget. If it runs over, run
# the cell again: the kernels compiled so far are cached on disk, so each try gets further.

# %%
# NBVAL_IGNORE_OUTPUT
# (whether compilation fits in the budget depends on the machine, so nbval does not compare)
start = time.perf_counter()
compiled_logits = compiled_forward(compile_model, example, COMPILE_BUDGET_S)
if compiled_logits is None:
    print("torch.compile did not finish here (no compiler, or over the budget): "
          "the model runs eagerly, as the trainer does when --compile fails.")
else:
    print(f"compiled and ran in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# A compiled model must compute the same function. Fused kernels may add up in a different
# order, so agreement is to rounding, here within $10^{-5}$:

# %%
if compiled_logits is not None:
    torch.testing.assert_close(compiled_logits, eager_logits, atol=1e-5, rtol=0)

# %% [markdown]
# The command-line trainer takes `--compile`; if compilation raises, the `Trainer` warns and
# continues in eager mode rather than losing the run.
#
# ## How much memory does training need?
#
# Before launching a run on a GPU you want to know whether it fits. Training memory has two
# parts:
#
# 1. **Model and optimizer state**, fixed for a model: the fp32 weights (4 bytes per
#    parameter), their gradients (4 more), and AdamW's two running averages per parameter,
#    $m$ (mean of gradients) and $v$ (mean of squared gradients), 4 bytes each. That is
#    **16 bytes per parameter**, plus a step counter per parameter tensor (4 bytes each in
#    PyTorch).
# 2. **Activations**: the intermediate tensors autograd keeps for the backward pass. They grow
#    with the batch size times the sequence length.
#
# First we need the parameter count from the config alone. Per block: the query and output
# projections are $d \times d$ each, keys and values $d \times K D$ each ($K$ key/value heads of
# width $D$), the SwiGLU three $d \times h$ matrices, plus two RMSNorm gains of size $d$.
# Outside the blocks: the $V \times d$ embedding, the final norm, and an output head that is
# free when tied to the embedding.

# %%
def count_parameters(config: ModelConfig) -> int:
    """Parameters of a Transformer built from `config`, from its shape alone."""
    d, kv_width = config.d_model, config.num_kv_heads * config.head_dim
    attention = 2 * d * d + 2 * d * kv_width  # q and o; k and v
    feed_forward = 3 * d * config.ffn_hidden_dim  # gate, up, down
    per_block = attention + feed_forward + 2 * d  # two RMSNorm gains
    head = 0 if config.tie_embeddings else config.vocab_size * d
    return config.vocab_size * d + config.num_layers * per_block + d + head


def count_parameter_tensors(config: ModelConfig) -> int:
    """How many parameter tensors (each gets its own AdamW step counter)."""
    return 1 + 9 * config.num_layers + 1 + (0 if config.tie_embeddings else 1)


PRESETS = ("tiny", "seed-22.5M", "gpt2-small")
for preset in PRESETS:
    config = ModelConfig.from_preset(preset)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        built = Transformer(config)
    assert count_parameters(config) == built.num_parameters(), preset
    assert count_parameter_tensors(config) == len(list(built.parameters())), preset
    print(f"{preset:11s}: {count_parameters(config):>12,} parameters")

# %% [markdown]
# Now the estimate of the fixed part, in bytes:

# %%
FP32 = 4  # bytes per float32 number


def training_state_bytes(config: ModelConfig) -> dict[str, int]:
    """fp32 weights, gradients and AdamW state (two moments and one step counter per tensor)."""
    params = count_parameters(config)
    return {"weights": FP32 * params, "gradients": FP32 * params,
            "adam_moments": 2 * FP32 * params,
            "adam_steps": FP32 * count_parameter_tensors(config)}


# %% [markdown]
# To check it, take a real tiny model, run one training step with the library's own optimizer
# (`trainer.make_optimizer`: AdamW with weight decay on the matrices only, fused where PyTorch
# has a fused kernel), and add up the bytes actually held in parameters, gradients and the
# optimizer's state. A tied output head shares the embedding's tensor, so each tensor is
# counted once.

# %%
train_model = Transformer(tiny_config)
optimizer = make_optimizer(train_model, TrainConfig(max_steps=1), torch.device("cpu"))
tokens = torch.randint(0, tiny_config.vocab_size, (4, 33))
step_loss = F.cross_entropy(train_model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
step_loss.backward()
optimizer.step()


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


parameters = list(train_model.parameters())  # each shared tensor listed once
measured = {"weights": sum(tensor_bytes(p) for p in parameters),
            "gradients": sum(tensor_bytes(p.grad) for p in parameters),
            "adam_moments": sum(tensor_bytes(optimizer.state[p][key]) for p in parameters
                                for key in ("exp_avg", "exp_avg_sq")),
            "adam_steps": sum(tensor_bytes(optimizer.state[p]["step"]) for p in parameters)}
estimate = training_state_bytes(tiny_config)
for part in estimate:
    print(f"{part:12s}: estimate {estimate[part]:>9,} bytes, measured {measured[part]:>9,} bytes")

# %%
assert estimate == measured
assert sum(estimate.values()) - estimate["adam_steps"] == 16 * train_model.num_parameters()

# %% [markdown]
# Exactly right, to the byte. Activations are harder to pin down, so we aim for an estimate
# that counts the big tensors and ignores the small ones. What autograd keeps for the backward
# pass, per token and per block, in fp32: six $d$-wide vectors (the input and output of each of
# the two norms, the rotated queries, and the attention output, which is also the input of the
# output projection), two $KD$-wide ones (the rotated keys and the values) and three $h$-wide
# ones in the SwiGLU (gate, up, and their product, the input of the down projection). The
# library's hand-written backward passes keep that list short: the SwiGLU recomputes
# $\mathrm{SiLU}(\text{gate})$ instead of storing it, RoPE, whose gradient is just the opposite
# rotation, stores nothing but its tables, and the residual additions store nothing at all.
# Outside the blocks: the logits (their log-softmax for the loss), $V$ wide, and two $d$-wide
# vectors (the final norm's input and output):
#
# $$\text{activation floats per token} \approx L\,(6d + 2KD + 3h) + V + 2d .$$
#
# Left out are a few single numbers per token: each norm's scale factor, one log-sum-exp per
# attention head, and the token ids and targets.

# %%
def block_activation_floats(config: ModelConfig) -> int:
    """Floats one block saves per token for the backward pass: 6 d-wide, 2 KD-wide, 3 h-wide."""
    d, kv_width, h = config.d_model, config.num_kv_heads * config.head_dim, config.ffn_hidden_dim
    return 6 * d + 2 * kv_width + 3 * h


def activation_bytes(config: ModelConfig, batch_size: int, seq_len: int) -> int:
    """Estimated fp32 bytes that autograd saves for one forward pass of batch_size x seq_len."""
    per_token = (config.num_layers * block_activation_floats(config) + config.vocab_size
                 + 2 * config.d_model)
    return FP32 * per_token * batch_size * seq_len


# %% [markdown]
# We can measure the real figure too. `torch.autograd.graph.saved_tensors_hooks` calls a
# function for every tensor that autograd saves; we add up the memory behind those tensors,
# counting each block of memory once and skipping the parameters and RoPE tables (they exist
# anyway).

# %%
def measured_activation_bytes(model: Transformer, input_ids: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for the backward of one forward pass and loss."""
    already_held = {t.untyped_storage().data_ptr()
                    for t in [*model.parameters(), *model.buffers()]}
    saved = {}

    def remember(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in already_held:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(remember, lambda tensor: tensor):
        logits = model(input_ids[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), input_ids[:, 1:].flatten())
    return sum(saved.values())


activation_model = Transformer(ModelConfig.from_preset("tinystories-cpu"))
batch_tokens = torch.randint(0, activation_model.config.vocab_size, (4, 65))  # 4 x (64 + 1)
measured_activations = measured_activation_bytes(activation_model, batch_tokens)
estimated_activations = activation_bytes(activation_model.config, 4, 64)
print(f"tinystories-cpu, batch 4 x 64: estimate {estimated_activations / 2**20:.2f} MiB, "
      f"measured {measured_activations / 2**20:.2f} MiB")

# %% [markdown]
# The formula lands just under the measurement, within 1%: what it leaves out is the handful of
# single numbers per token. Treat it as a guide to the peak, not a promise: another attention
# kernel, autocast (which saves some tensors in both precisions) and the temporary buffers of
# the backward pass all move the real peak.

# %%
assert 0.99 < estimated_activations / measured_activations <= 1.0

# %% [markdown]
# Now the three presets side by side. The fixed part is 16 bytes per parameter; the
# activations are given per 1,024 tokens in a batch (say 2 sequences of 512), so multiply by
# your own batch size times sequence length over 1,024.

# %%
GiB = 2**30
state_gib = {}
for preset in PRESETS:
    config = ModelConfig.from_preset(preset)
    state_gib[preset] = sum(training_state_bytes(config).values()) / GiB
    per_1024_tokens = activation_bytes(config, batch_size=1, seq_len=1024) / GiB
    print(f"{preset:11s}: {count_parameters(config) / 1e6:7.2f} M parameters, weights + "
          f"gradients + AdamW {state_gib[preset]:.3f} GiB, activations {per_1024_tokens:.3f} GiB "
          f"per 1,024 tokens")

# %% [markdown]
# The fixed part grows with the parameter count, 16 bytes at a time (note the log scale):

# %%
viz.plot_bars(state_gib, title="fp32 weights + gradients + AdamW state",
              ylabel="GiB (log scale)", annotate="{:.3f} GiB", logy=True)

# %% [markdown]
# The lesson of the table: for models this small the weights and optimizer state are cheap,
# and a batch of a few thousand tokens already costs more in activations. For the 22.5M model
# about half of the activation memory is the logits: 50,257 numbers per token, as many as all
# twelve blocks save together. When a run does not fit, lower the batch per forward
# pass with `--grad-accum N` (same gradients, activations divided by $N$) before you reach
# for a smaller model.

# %%
seed = ModelConfig.from_preset("seed-22.5M")
logit_floats = seed.vocab_size
block_floats = seed.num_layers * block_activation_floats(seed)
print(f"seed-22.5M, floats saved per token: logits {logit_floats:,}, all blocks {block_floats:,}"
      f" ({logit_floats / (logit_floats + block_floats):.0%} logits)")
assert 0.9 < logit_floats / block_floats < 1.1  # the logits weigh as much as all the blocks

# %% [markdown]
# ## Scaling out: data parallelism
#
# With several GPUs (or several CPU processes) the simplest speed-up is **data parallelism**:
#
# - every process holds a full copy of the model and of the optimizer state, so the memory per
#   GPU does not shrink (sharding that too is what FSDP and ZeRO do);
# - each optimizer step's global batch is split into equal shares, one per process;
# - each process runs the forward and backward pass on its share;
# - the gradients are averaged across processes (an *all-reduce*, which PyTorch's
#   `DistributedDataParallel` overlaps with the backward pass);
# - every process applies the same averaged gradient, so the copies stay identical.
#
# Averaging the gradients of equal shares gives exactly the gradient of the whole batch,
# because the loss is a mean over sequences. Here is that fact checked in one process, with two
# pretend ranks:

# %%
def gradients(model: Transformer, batch: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of the mean next-token loss on batch (B, T+1)."""
    model.zero_grad()
    logits = model(batch[:, :-1])
    F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten()).backward()
    return [p.grad.clone() for p in model.parameters()]


ddp_model = Transformer(tiny_config)
global_batch = torch.randint(0, tiny_config.vocab_size, (4, 17))  # 4 sequences of 16 (+1)
whole = gradients(ddp_model, global_batch)
rank_0, rank_1 = gradients(ddp_model, global_batch[:2]), gradients(ddp_model, global_batch[2:])
for full, g0, g1 in zip(whole, rank_0, rank_1, strict=True):
    torch.testing.assert_close((g0 + g1) / 2, full, atol=1e-6, rtol=1e-5)
print("averaged gradients of the two halves = gradient of the whole batch")

# %% [markdown]
# ### Launching it
#
# `torchrun` starts the processes and tells each one its rank and the world size through
# environment variables; `tlib-train` notices them, joins the process
# group (NCCL on CUDA GPUs, gloo on CPUs) and trains data-parallel:
#
# ```bash
# torchrun --nproc_per_node=N -m transformer_lib.cli.train --data $TINYSTORIES_PATH --out runs/ddp
# ```
#
# - `--nproc_per_node=N`: N processes on this machine, one per GPU (process $i$ uses `cuda:i`).
# - `--batch-size` is the **global** batch: each process takes `batch_size / N` of the same
#   sequences a one-process run would see, so one and N processes compute the same steps. It
#   must divide evenly by N (times `--grad-accum`).
# - Only rank 0 writes checkpoints and logs; evaluation is split across ranks and summed.
# - On a CPU, data parallelism pays only with spare cores: give each process its share with
#   `--threads` (e.g. two processes with `--threads 4` on an 8-core machine).
#
# ### The 22.5M model on one GPU
#
# The original design's model on the full TinyStories data set, on one CUDA GPU, for an hour.
# This is not run here (it needs a GPU, the network for the data and GPT-2's vocabulary, and
# an hour):
#
# ```bash
# tlib-train --out runs/seed --preset seed-22.5M --tokenizer gpt2 \
#     --batch-size 64 --seq-len 512 --weight-decay 0.1 --max-minutes 60 --device cuda
# ```
#
# - `--out runs/seed`: the run directory (checkpoints, tokenizer, logs); `--resume` continues
#   it after an interruption.
# - `--preset seed-22.5M`: $d = 256$, 12 blocks of 8 heads, a 512-token context and GPT-2's
#   50,257-token vocabulary with tied embeddings: 22,505,984 parameters.
# - `--tokenizer gpt2`: GPT-2's BPE through tiktoken (downloaded once), instead of training a
#   small BPE on the data; its vocabulary matches the preset's.
# - `--batch-size 64 --seq-len 512`: 64 windows of 512 tokens, 32,768 tokens per step.
# - `--weight-decay 0.1`: one pass over the full dataset wants the usual decay, not the 1.0 the
#   command uses against memorising the small extract (chapter 7).
# - `--max-minutes 60`: stop after an hour of wall-clock time; the learning-rate schedule is
#   planned to end exactly then.
# - `--device cuda`: stop with an error if there is no GPU, instead of quietly training on a
#   CPU. The precision policy then picks bf16 autocast.
# - No `--data`: the stories come from `TINYSTORIES_PATH`, or from the Hugging Face hub when
#   it is unset.
#
# What our estimates say about that run (the command trains the blocks' matrices with Muon, which
# keeps one buffer a weight where AdamW keeps two, so the AdamW figure is an upper bound):

# %%
seed_state = sum(training_state_bytes(seed).values())
seed_activations = activation_bytes(seed, batch_size=64, seq_len=512)
print(f"parameters: {count_parameters(seed):,}")
print(f"tokens per step: {64 * 512:,}")
print(f"weights + gradients + AdamW: {seed_state / GiB:.2f} GiB")
print(f"activations (fp32 estimate): {seed_activations / GiB:.1f} GiB")

# %% [markdown]
# About 12 GiB of activations in fp32 (bf16 autocast trims part of it) next to a third of a
# GiB of model state: comfortable on a 40 or 80 GB card. On a smaller card, add
# `--grad-accum 2` or `4`: the same 64-sequence step, computed in 2 or 4 slices.

# %%
assert count_parameters(seed) == 22_505_984
assert seed_activations > 20 * seed_state

# %% [markdown]
# ## Where the time goes
#
# A model's cost is easy to count on paper. A token passing forward through a weight matrix
# costs one multiply and one add per weight, so with $N$ weights that multiply (every block's
# matrices and the output head; the embedding is a lookup) the forward pass costs $2N$ FLOPs
# per token, and the backward pass twice that. Attention adds, in each of the $L$ layers, the
# scores $q \cdot k$ and the weighted sum of the values over the $T$ positions in context,
# $2TC$ FLOPs each. So, per token,
#
# $$\text{inference: } 2N + 4LTC, \qquad \text{training: } 6N + 12LTC$$
#
# (the convention of PaLM and nanoGPT, which counts the causally masked half of the scores
# too). `transformer_lib.analysis.cost` computes these, and the bytes a step must move: at
# batch 1, decoding a token reads every weight once (4 bytes each in float32) plus the cached
# keys and values, for just 2 FLOPs per weight.
#
# Whether a step is limited by arithmetic or by memory depends on its **arithmetic
# intensity**, FLOPs per byte moved. A machine does at most its peak FLOP/s, and at most its
# memory bandwidth times the intensity: the **roofline**,
# $\min(\text{peak}, \text{intensity} \times \text{bandwidth})$. We measure both on one
# thread of this CPU: a 1,024 × 1,024 float32 product for the peak, a 64 MiB copy for the
# bandwidth. (Machine figures: not compared when the book is tested.)

# %%
# NBVAL_IGNORE_OUTPUT
# (a machine description: peak and bandwidth differ from CPU to CPU)
from torch.profiler import ProfilerActivity, profile

from transformer_lib.analysis import cost
from transformer_lib.book import BOOK_MODEL, BOOK_VOCAB_SIZE

threads = torch.get_num_threads()
torch.set_num_threads(1)  # one core, as for the timings above
peak_flops = cost.measured_matmul_flops(1024, repeats=10)
bandwidth = cost.measured_bandwidth(64, repeats=10)  # far larger than the CPU's caches
cache_bandwidth = cost.measured_bandwidth(4, repeats=10)  # about the book model's weights
print(f"one thread: matmul peak {peak_flops / 1e9:.1f} GFLOP/s, memory bandwidth "
      f"{bandwidth / 1e9:.1f} GB/s (a 4 MiB copy: {cache_bandwidth / 1e9:.1f} GB/s), ridge at "
      f"{cost.ridge_intensity(peak_flops, bandwidth):.0f} FLOPs per byte")

# %% [markdown]
# Now the book's model at work. `torch.profiler` records every operator that one training
# step (forward, loss, backward and the AdamW step, on 8 sequences of 128 tokens) and one
# decoding step (one new token after a 64-token prompt, with the KV cache) run, and how long
# each took on its own (its *self* time, children excluded). We put the operators into a few
# groups and print each group's share of the step. The shares depend on the CPU and its
# kernels, so they are not compared when the book is tested; the facts below them are.

# %%
# NBVAL_IGNORE_OUTPUT
# (the profiler may log its start and stop, with the time of day)
book_config = ModelConfig(vocab_size=BOOK_VOCAB_SIZE, **BOOK_MODEL)
book_model = Transformer(book_config)
book_optimizer = make_optimizer(book_model, TrainConfig(max_steps=1), torch.device("cpu"))
train_batch = torch.randint(0, book_config.vocab_size, (8, 129))
prompt = torch.randint(0, book_config.vocab_size, (1, 64))


def training_step() -> None:
    logits = book_model(train_batch[:, :-1])
    F.cross_entropy(logits.flatten(0, 1), train_batch[:, 1:].flatten()).backward()
    book_optimizer.step()
    book_optimizer.zero_grad(set_to_none=True)


def operator_group(name: str) -> str:
    """The group an operator's time is counted in, from its profiler name."""
    if "scaled_dot_product" in name or "flash_attention" in name:
        return "attention kernel"
    if name.startswith("aten::") and name.removeprefix("aten::").lstrip("_").startswith(
            ("mm", "addmm", "bmm", "matmul", "linear")):
        return "matrix products"
    if "adam" in name.lower() or "_foreach" in name:
        return "optimizer"
    if name.startswith("aten::"):
        return "element-wise, norms, copies and views"
    return "framework (autograd, Python, bookkeeping)"


def profile_shares(step, repeats: int) -> tuple[dict[str, float], int]:
    """({group: share of the self time}, operator calls per step) over `repeats` calls of step()
    (several, so that one unlucky pause does not decide the shares)."""
    step()  # warm-up: first calls allocate and pick kernels
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            step()
    times, calls = {}, 0
    for event in prof.key_averages():
        group = operator_group(event.key)
        times[group] = times.get(group, 0.0) + event.self_cpu_time_total
        calls += event.count if event.key.startswith("aten::") else 0
    total = sum(times.values())
    shares = {group: t / total for group, t in sorted(times.items(), key=lambda kv: -kv[1])}
    return shares, calls // repeats


with torch.no_grad():
    caches = book_model.make_caches(1)
    book_model(prompt, caches)  # the prompt fills the cache
    next_id = torch.randint(0, book_config.vocab_size, (1, 1))

    def decoding_step() -> None:
        book_model(next_id, caches, last_only=True)

    decode_shares, decode_calls = profile_shares(decoding_step, repeats=20)
train_shares, train_calls = profile_shares(training_step, repeats=3)

# %%
# NBVAL_IGNORE_OUTPUT
# (shares of measured time: they differ from CPU to CPU)
for name, shares, calls in (("training step", train_shares, train_calls),
                            ("decoding step", decode_shares, decode_calls)):
    print(f"{name}: {calls:,} operator calls")
    for group, share in shares.items():
        print(f"  {group:42s} {share:4.0%}")

# %% [markdown]
# On the CPU this book was written on, the training step spent more than half of its time in
# the matrix products: 1,024 tokens share each weight. The decoding step is a different
# animal: close to a thousand operator calls (counting the ones each operator calls inside)
# for one token, each tiny, and the matrix products took well under half of the time; the
# rest went to element-wise operations, copies and views that do almost no
# arithmetic, so their time is the cost of running an operator at all (dispatch, shape checks,
# allocation).
# The count of calls is a property of the code, not of the CPU:

# %%
assert decode_calls > 100  # hundreds of operators for a single token
assert train_calls > decode_calls

# %% [markdown]
# The roofline puts numbers on this. For four models (the book's, llama2.c's stories260K and a
# model of stories15M's shape, both read as llama2.c files elsewhere in the book, and the 22.5M
# configuration) we place two workloads: decoding at batch 1 with 256 tokens of context, and
# training on 16 × 256 tokens per step (its bytes count only the weights' traffic, read once
# forward and twice backward, so its real intensity is lower). Then we time the book model's
# own decoding and training steps and add what they achieved as filled markers.

# %%
stories260k_config = ModelConfig(vocab_size=512, d_model=64, num_layers=5, num_heads=8,
                                 num_kv_heads=4, ffn_hidden_dim=172, max_seq_len=512)
stories15m_config = ModelConfig(vocab_size=32000, d_model=288, num_layers=6, num_heads=6,
                                ffn_hidden_dim=768, max_seq_len=256)
roofline_models = {"book model": book_config, "stories260K": stories260k_config,
                   "stories15M shape": stories15m_config,
                   "22.5M": ModelConfig.from_preset("seed-22.5M")}
CONTEXT, TOKENS_PER_STEP = 256, 16 * 256
workloads = []
for name, config in roofline_models.items():
    workloads.append(cost.Workload(f"{name}, decode", cost.forward_flops_per_token(config, CONTEXT),
                                   cost.decode_bytes_per_token(config, CONTEXT)))
    workloads.append(cost.Workload(f"{name}, train", cost.training_flops_per_token(config, CONTEXT),
                                   cost.training_bytes_per_token(config, TOKENS_PER_STEP)))
for workload in workloads:
    print(f"{workload.name:24s} {workload.flops / 1e6:9.2f} MFLOP/token, "
          f"{workload.intensity:8.1f} FLOPs per byte")

# %%
decode_intensities = [w.intensity for w in workloads if w.name.endswith("decode")]
train_intensities = [w.intensity for w in workloads if w.name.endswith("train")]
assert all(i < 1 for i in decode_intensities)  # about 2 FLOPs per 4-byte weight
assert min(train_intensities) > 100 * max(decode_intensities)

# %%
# NBVAL_IGNORE_OUTPUT
# (timings)
with torch.no_grad():
    decode_seconds = cost.best_seconds(decoding_step, repeats=20)
train_seconds = cost.best_seconds(training_step, repeats=3) / (8 * 128)  # per token
torch.set_num_threads(threads)
achieved = {"book model, decode": cost.forward_flops_per_token(book_config, 64) / decode_seconds,
            "book model, train": cost.training_flops_per_token(book_config, 128) / train_seconds}
for name, rate in achieved.items():
    print(f"{name}: {rate / 1e9:.2f} GFLOP/s, {rate / peak_flops:.0%} of the matmul peak")
print(f"decoding: {1e6 * decode_seconds:.0f} µs per token, "
      f"{1e6 * decode_seconds / decode_calls:.2f} µs per operator call; reading its weights from cache would take "
      f"{1e6 * cost.decode_bytes_per_token(book_config, 64) / cache_bandwidth:.0f} µs")
viz.plot_roofline(workloads, peak_flops=peak_flops, bandwidth=bandwidth, measured=achieved,
                  title="Roofline of one core of this CPU (float32)")

# %% [markdown]
# Every decoding point sits far left, below 1 FLOP per byte: at batch 1 decoding is
# memory-bound on any hardware, and the only way up the slope is more tokens per weight read (a
# batch of sequences). Training sits far right, under the flat compute roof, and the book
# model's measured training step reaches a good part of it (on the machine the stored figure
# comes from, roughly half the matmul peak). Its measured decoding is far below both roofs.
# The memory roof is drawn with the bandwidth of a copy far larger than the CPU's
# caches; but the book model's weights, 4 MB, fit in the cache, which streams them several
# times faster (the 4 MiB copy above), so its true roof is higher still, and the printed
# figures say where the time goes instead: a few microseconds for each of about a thousand
# operator calls. A tiny model is **overhead-bound**: its time goes to the framework, not to
# arithmetic or memory. The same model, on the same core, does about forty times fewer FLOP/s
# decoding than training. That is what `torch.compile` attacks (fusing the operators into a
# few generated kernels, and taking Python out of the loop), and why a hand-written C loop
# such as llama2.c's `run.c` is so fast on a model this small. For a large model the same
# overhead is spread over far more arithmetic per operator and disappears.

# %%
assert achieved["book model, decode"] < achieved["book model, train"] / 3

# %% [markdown]
# ### What compiling changes
#
# `generate(..., compile=True)` takes Python out of the decoding loop the way gpt-fast does: a
# *static* KV cache of fixed size, the position passed as a tensor rather than a Python int, so
# that one compiled graph serves every token, and weights laid out for a row vector
# (`generation.decoding_weights`: each matrix stored (in, out), q/k/v and gate/up fused into
# one product each). On a CPU that step is compiled *ahead of time* (AOTInductor:
# `torch.export`, then `torch._inductor.aoti_compile_and_package`), so that a call is one C++
# function: no check by the just-in-time compiler that its graph still applies, no Python
# between the kernels; and attention there covers only the positions filled so far (their
# number is a dynamic size of the exported step), not the whole static cache. We measured it
# with `tlib-bench --llama2c` against llama2.c's `run.c`, a few hundred lines of plain C
# compiled with `gcc -Ofast -march=native`, on two models: the
# 260K-parameter stories260K, and a file of stories15M's shape (15M parameters, 6 layers of
# width 288, a 32,000-token vocabulary) with random weights. Timings are of one machine, so
# they are stored, with the machine, rather than remeasured here.

# %%
from transformer_lib.book import stored_decoding_bench

decoding_bench = stored_decoding_bench()
print({key: decoding_bench["meta"][key] for key in ("cpu", "torch", "date", "runc_build")})
for name, run in decoding_bench["runs"].items():
    rates = run["tokens_per_s"]
    print(f"{name}: " + ", ".join(f"{way} {rate:,.0f} tokens/s" for way, rate in rates.items())
          + f"; compiled / run.c = {run['ratio_to_runc']['compiled']:.2f}")

# %%
viz.plot_bars({f"{name.split(',')[0]}: {way}": rate
               for name, run in decoding_bench["runs"].items()
               for way, rate in run["tokens_per_s"].items()},
              title="Batch-1 greedy decoding on one thread (stored figures)",
              ylabel="tokens per second (log scale)", annotate="{:,.0f}", logy=True)

# %% [markdown]
# On stories260K compiling made decoding about 15 times faster, to about four fifths of
# `run.c`'s speed. For a model this small a call into the BLAS library costs more than the
# product it computes, so when every matrix is small (at most 64K numbers) the compiled step
# writes each matrix product out as elementwise products and a sum: the compiler fuses them
# with everything around them, and the whole step becomes one generated C++ function with its
# buffers on the stack, much as `run.c` is one C loop. What is left of the gap is mostly the
# Python loop around the steps. On the 15M shape the arithmetic dominates and the library's
# matrix products stay (written out, they were much slower there); compiling more than doubled
# the speed, and the compiled path is about 14% faster than the C reference: much of that gain
# is the (in, out) layout, since a row vector times an (out, in) matrix (what `F.linear`
# computes) is several times slower for the 32,000-row output head (`benchmarks/RESULTS.md`
# times the head alone). The bigger the model, the less the framework matters.

# %%
small, large = decoding_bench["runs"].values()
for run in (small, large):
    assert run["compiled_equals_eager"]  # compiling changed no token
    assert run["tokens_per_s"]["compiled"] > 2 * run["tokens_per_s"]["eager"]
assert 12 < small["tokens_per_s"]["compiled"] / small["tokens_per_s"]["eager"] < 18
assert 0.75 < small["ratio_to_runc"]["compiled"] < 0.85
assert large["tokens_per_s"]["compiled"] > 2.5 * large["tokens_per_s"]["eager"]
assert 1.1 < large["ratio_to_runc"]["compiled"] < 1.2

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your answer, which starts as a placeholder (`...`), and a check
# cell that prints whether the answer is right, with a hint if it is not. The answers are in
# the solutions notebook for this chapter.
#
# **Exercise 1.** Which of fp32, bf16 and fp16 can store $1 + 2^{-9}$ exactly? Work it out from
# the mantissa widths in the table, then confirm with `stored(...)`. Give a set of names,
# e.g. `{"fp32"}`.

# %%
exact_formats = ...  # your answer: a set of format names

# %%
ch09.exercise_1(exact_formats)

# %% [markdown]
# **Exercise 2.** You launch
# `torchrun --nproc_per_node=3 -m transformer_lib.cli.train ... --batch-size 126 --grad-accum 2`.
# How many sequences does each process push through the model in one forward pass?

# %%
sequences_per_forward = ...  # your answer: an int

# %%
ch09.exercise_2(sequences_per_forward)

# %% [markdown]
# **Exercise 3.** Generation needs memory too: the KV cache of chapter 8, which grows with every
# sequence served and every token of it. Write a function that says how many sequences of
# `seq_len` tokens a device with `memory_bytes` of memory can serve at once: the float32 KV
# caches of all of them (what `model.make_caches(batch_size, seq_len)` builds) must fit next to
# the model's float32 weights, from the configuration alone. For instance, how many 512-token
# sequences of the 22.5M model fit on a 24 GiB GPU? This is the number that decides how many
# users one GPU can serve. The check compares your function with caches and weights actually
# built for several presets, lengths and memory sizes.

# %%
def max_sequences(config: ModelConfig, seq_len: int, memory_bytes: int) -> int:
    """How many sequences of seq_len tokens fit: their float32 KV caches beside the weights."""
    ...  # your answer


# %%
ch09.exercise_3(max_sequences)

# %% [markdown]
# **Exercise 4 (experiment).** How much accuracy does bf16 cost in a matrix product, and does
# it get worse as the matrices grow? For sizes $n$ from 16 to 512, draw two random
# $n \times n$ float32 matrices `a`, then `b`, from `torch.Generator().manual_seed(seed)` (a
# fresh generator for each $n$, with a seed of your choice), multiply them in plain fp32 and
# under bf16 autocast (as in the timing above), and measure each product's relative error
# $\lVert \hat C - C \rVert / \lVert C \rVert$ against the product of the same matrices in
# float64. Store the results as `{n: (fp32_error, bf16_error)}`, then look at how each column
# changes with $n$: what does the bf16 column tell you about how autocast adds up the $n$
# products in each entry? The check redraws your matrices from the seed and measures again.

# %%
matmul_errors = ...  # your answer: {n: (fp32_error, bf16_error)} for several n
matmul_seed = ...  # your answer: the seed the matrices were drawn from

# %%
ch09.exercise_4(matmul_errors, matmul_seed)

# %% [markdown]
# ## What we learned, and where it lives in the library
#
# - `transformer_lib.device`: `pick_device` (CUDA, then MPS, then CPU; an absent device asked
#   for by name is an error), `pick_precision` (bf16 autocast on CUDA with bf16; fp32 on MPS;
#   fp32 on CPU unless bf16 is requested, as the training command does on a CPU with bf16 in
#   hardware;
#   `--precision fp32` overrides it) and `describe`. `Precision.autocast(device)` is the
#   context manager the trainer and the evaluator use.
# - bf16 has fp32's range and an 8-bit significand: good for arithmetic, too coarse for
#   weights and updates, which therefore stay fp32. fp16 would need loss scaling.
# - `torch.compile` fuses and generates kernels; it pays off on GPUs and costs a long first
#   compilation on small CPUs. `--compile` in `tlib-train` falls back to eager.
#   `generate(..., compile=True)` decodes with a static cache and weights laid out for a row
#   vector (`generation.decoding_weights`), its step compiled ahead of time on a CPU;
#   `tlib-bench --llama2c FILE --runc run` times it against llama2.c's C.
# - Training state costs 16 bytes per parameter with AdamW in fp32; activations grow with
#   batch × sequence length, and for a large vocabulary the logits are a big part of them.
#   `trainer.make_optimizer` builds the AdamW measured here.
# - `analysis.cost`: FLOPs per token ($6N + 12LTC$ training, $2N + 4LTC$ inference), bytes
#   per token, the roofline and the machine's measured peak and bandwidth;
#   `viz.plot_roofline` draws it. At batch 1 decoding is memory-bound, and a tiny model is
#   bound by the framework's per-operator overhead.
# - `torchrun --nproc_per_node=N -m transformer_lib.cli.train ...` trains data-parallel with the
#   same global batch as one process (NCCL on CUDA, gloo on CPU).
