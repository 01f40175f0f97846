# %% [markdown]
# # 8. Generation
#
# A language model only ever answers one question: given these tokens, how likely is each
# possible next token? Generating text means asking that question again and again, picking a
# token each time and appending it. This chapter takes the book's stored model, a trained
# version of chapter 7's model, and builds the two halves of that loop:
#
# - **choosing** the next token from the distribution: greedy decoding, temperature, top-k and
#   top-p (nucleus) sampling, each written from scratch and checked against
#   `generation.filter_logits`, with an explorer to see what each setting cuts;
# - **computing** the distribution cheaply: the **KV cache**, which keeps the keys and values of
#   past positions so that each new token costs one position of work instead of the whole
#   sequence. We build one around the library's layers, check that it produces the same tokens,
#   and measure the speed-up.
#
# At the end we look inside the trained model at what its attention heads attend to. In the
# exercises you write the sampler, `next_token`, and one decoding step of attention with a KV
# cache yourself, each checked against the library on random inputs.

# %%
import time

import torch

from transformer_lib import book
from transformer_lib.book import pieces, viz
from transformer_lib.book.exercises import ch08
from transformer_lib.book.widgets import AttentionExplorer, SamplingExplorer
from transformer_lib.model import generation
from transformer_lib.model.attention import repeat_kv
from transformer_lib.model.rope import apply_rope

_ = torch.manual_seed(0)  # every random draw below is reproducible

# %% [markdown]
# ## The trained model
#
# `book.stored_model()` loads the model that the rest of the book studies. It has the
# architecture of chapter 7's model (d_model 128, 4 layers, 4 query heads sharing 2 key/value
# heads, a 2,048-token vocabulary, a 256-token context), but it was trained once, for longer, by
# the command-line recipe, and its weights ship with the library: every reader, on any CPU,
# studies the same model, and nothing is retrained here. Its `meta` records how it was made.

# %%
stored = book.stored_model()
model, tokenizer, meta = stored.model, stored.tokenizer, stored.meta
config = model.config
print(f"{model.num_parameters():,} parameters, {tokenizer.vocab_size:,} token ids, "
      f"{config.num_layers} layers, {config.num_heads} query heads sharing "
      f"{config.num_kv_heads} key/value heads")
print(f"trained by: {meta['recipe']['command']}")
print(f"{meta['step']:,} steps; {meta['validation']['bits_per_byte']:.3f} bits/byte on the "
      f"book's validation stories")

# %%
assert config.num_kv_heads < config.num_heads  # grouped-query attention
assert not model.training  # eval mode: no dropout while generating

# %% [markdown]
# ## The next-token distribution
#
# We start the model the way every training story starts, with the end-of-text token, and give
# it the beginning of a sentence. The logits at the last position score every id in the
# vocabulary; softmax turns them into probabilities.

# %%
prompt_text = "Once upon a time, there was a little"
prompt = [tokenizer.eot_id] + tokenizer.encode(prompt_text)
with torch.no_grad():
    logits = model(torch.tensor([prompt]))[0, -1]  # (V,) scores for the next token
probs = torch.softmax(logits, dim=-1)
top = torch.topk(probs, 8)
for p, i in zip(top.values, top.indices, strict=True):
    print(f"{tokenizer.decode([int(i)])!r:>10}  {p:.3f}")

# %%
assert torch.isclose(probs.sum(), torch.tensor(1.0))
assert probs.max() < 0.9  # the model is unsure: several continuations are plausible

# %% [markdown]
# ## Four ways to choose a token
#
# **Greedy decoding** takes the most likely token every time. It is deterministic, and on a
# small model it soon repeats itself: once a phrase is the most likely continuation of itself,
# nothing breaks the loop.
#
# **Sampling** draws the token from the distribution instead. Three knobs reshape the
# distribution before the draw, all acting on the logits $z$:
#
# - **temperature** $\tau$ divides the logits, $p_i \propto e^{z_i/\tau}$. Below 1 it sharpens
#   the distribution towards the likeliest tokens; above 1 it flattens it; as $\tau \to 0$ it
#   becomes greedy.
# - **top-k** keeps the $k$ highest-scoring tokens and sets the others to $-\infty$ (probability
#   0).
# - **top-p** (nucleus sampling, Holtzman et al., 2019) keeps the smallest set of most likely
#   tokens whose probabilities add up to at least $p$. Unlike top-k it adapts to how sure the
#   model is: after "Once upon a" one token holds most of the mass and the nucleus is tiny;
#   after "Lily went to the" many places are plausible and it is wide.
#
# The library applies them in that order: temperature first, then top-k, then top-p on the
# tempered probabilities. Here is each one, on a single vector of logits.

# %%
NEG_INF = float("-inf")


def greedy_filter(logits: torch.Tensor) -> torch.Tensor:
    """Keep only the highest logit."""
    kept = torch.full_like(logits, NEG_INF)
    best = logits.argmax()
    kept[best] = logits[best]
    return kept


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest logits (ties with the k-th are kept too)."""
    kth_highest = torch.sort(logits, descending=True).values[k - 1]
    return torch.where(logits >= kth_highest, logits, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the fewest most likely tokens whose probability adds up to at least p."""
    sorted_probs = torch.sort(torch.softmax(logits, dim=-1), descending=True).values
    needed = int((torch.cumsum(sorted_probs, dim=-1) < p).sum()) + 1  # tokens to reach p
    needed = min(needed, logits.numel())
    threshold = torch.sort(logits, descending=True).values[needed - 1]
    return torch.where(logits >= threshold, logits, NEG_INF)


def sampling_filter(logits: torch.Tensor, temperature: float, top_k: int | None = None,
                    top_p: float | None = None) -> torch.Tensor:
    """Temperature, then top-k, then top-p; temperature 0 means greedy."""
    if temperature == 0:
        return greedy_filter(logits)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


for temperature, top_k, top_p in ((0.8, None, None), (1.0, 50, None), (1.0, None, 0.9),
                                  (0.7, 20, 0.5)):
    kept = torch.isfinite(sampling_filter(logits, temperature, top_k, top_p)).sum()
    print(f"temperature={temperature}, top_k={top_k}, top_p={top_p}: tokens kept = {int(kept)}")

# %% [markdown]
# `generation.filter_logits` does the same for whole batches of positions at once. We compare
# the two on every position of a real sentence, under a range of settings.

# %%
with torch.no_grad():
    sentence_logits = model(torch.tensor([prompt]))[0]  # (T, V): one row per position
settings = [(0.0, None, None), (0.5, None, None), (1.0, None, None), (1.5, None, None),
            (1.0, 1, None), (1.0, 10, None), (0.8, 50, None), (1.0, None, 0.5),
            (1.0, None, 0.9), (0.7, None, 0.95), (0.8, 50, 0.9), (1.2, 5, 0.3)]
for temperature, top_k, top_p in settings:
    library = generation.filter_logits(sentence_logits, temperature, top_k, top_p)
    for row, row_logits in enumerate(sentence_logits):
        mine = sampling_filter(row_logits, temperature, top_k, top_p)
        torch.testing.assert_close(mine, library[row])  # same values, same -inf places
print(f"{len(settings)} settings x {len(sentence_logits)} positions: identical to filter_logits")

# %% [markdown]
# The nucleus adapts to the context. With $p = 0.9$, here is how many tokens survive after three
# prompts, and the probability of the likeliest one:

# %%
def nucleus_size(text: str, p: float = 0.9) -> tuple[int, float]:
    """Tokens that top-p keeps after `text`, and the top probability."""
    with torch.no_grad():
        next_logits = model(torch.tensor([[tokenizer.eot_id] + tokenizer.encode(text)]))[0, -1]
    kept = torch.isfinite(generation.filter_logits(next_logits, 1.0, None, p)).sum()
    return int(kept), torch.softmax(next_logits, -1).max().item()


nucleus = {text: nucleus_size(text) for text in
           ("Once upon a", prompt_text, "One day, Lily went to the")}
for text, (kept, top_prob) in nucleus.items():
    print(f"{text!r:40} top token {top_prob:.2f}, nucleus of {kept} tokens")

# %%
sizes = [kept for kept, _ in nucleus.values()]
assert sizes == sorted(sizes) and sizes[0] <= 2 and sizes[-1] > 15

# %% [markdown]
# From here on we use the library's version. Sampling then draws one token from the softmax of
# the filtered logits, which is what `generation.sample_next_token` does with `torch.multinomial`.
# With a seeded `torch.Generator` the draw is reproducible. Here is a continuation under four
# settings: greedy already repeats itself ("play outside and play outside"), a high temperature
# wanders off into invented words ("blorrow", "mildip"), and the truncated samplers in between
# vary the story while mostly staying readable, if not always sensible ("roll up a big green
# grass"). (An `<|endoftext|>` inside a sample is the model ending its story and starting the
# next one.)

# %%
def continue_prompt(max_new_tokens: int = 40, seed: int = 0, **sampling) -> str:
    """Generate from the prompt and return only the new text."""
    out = model.generate(prompt, max_new_tokens, generator=torch.Generator().manual_seed(seed),
                         **sampling)
    return tokenizer.decode(out[len(prompt):])


for name, sampling in (("greedy", dict(temperature=0.0)),
                       ("temperature 1.5", dict(temperature=1.5)),
                       ("temperature 0.8, top-k 50", dict(temperature=0.8, top_k=50)),
                       ("top-p 0.9", dict(temperature=1.0, top_p=0.9))):
    print(f"[{name}]\n{prompt_text}{continue_prompt(**sampling)}\n")

# %% [markdown]
# ## The sampling explorer
#
# Move the sliders to see what each setting keeps. Bars are the probabilities after temperature
# of the 20 likeliest tokens, coloured by what cut them; the dots are the probabilities the
# sampler finally draws from, renormalised over the survivors. Type another prompt to run the
# model again. (The sliders need a live Jupyter kernel with ipywidgets; a static page shows the
# starting view.)

# %%
explorer = SamplingExplorer(model, tokenizer, prompt=prompt_text, temperature=0.8, top_k=50)
explorer

# %% [markdown]
# One fixed view, drawn with `viz.plot_next_token_choice`, for a prompt after which many places
# are plausible, "One day, Lily went to the", at temperature 1.2 with both cuts on: top-k 12
# removes everything after the twelfth token (grey), then top-p 0.9 keeps only the likeliest
# tokens that hold 90% of what is left (orange marks what it removes).

# %%
open_logits = viz.next_token_logits(model, tokenizer, "One day, Lily went to the")
choice = viz.next_token_choice(open_logits, temperature=1.2, top_k=12, top_p=0.9)
viz.plot_next_token_choice(choice, tokenizer)

# %%
assert choice.num_surviving == int(torch.isfinite(
    generation.filter_logits(open_logits, 1.2, 12, 0.9)).sum())
assert 1 < choice.num_surviving < 12 and {"top-k", "top-p"} <= set(choice.cut_by)

# %% [markdown]
# ## The KV cache
#
# Without a cache, generating token $t+1$ runs the model over all $t$ tokens so far, although
# only the last position's logits are used. Most of that work was already done at the previous
# step: the keys and values of positions $1..t-1$ do not change when a token is appended,
# because of the causal mask (no earlier position can see a later one). Only the new token's
# query needs all of them.
#
# So we keep, for every layer, the keys and values of the positions seen so far, and feed the
# model only the **new** token. Each layer projects it to a query, a key and a value, rotates
# the query and key by RoPE at the token's absolute position, appends the key and value to the
# cache, and attends from the one query to every cached key:
#
# $$\text{out}_t = \operatorname{softmax}\!\left(\frac{q_t K_{1..t}^\top}{\sqrt{D}}\right)
#   V_{1..t}.$$
#
# The first call processes the whole prompt at once (the *prefill*) and needs the causal mask
# within the prompt; every later call has one query, which may see all keys. Below, the model's
# forward pass is written out around the library's modules (norms, projections, feed-forward,
# output head), with our own cache: a list per layer of the keys and values so far.

# %%
@torch.no_grad()
def forward_with_cache(model, input_ids: torch.Tensor, past: list[dict]) -> torch.Tensor:
    """Logits (B, T, V) for input_ids (B, T) that continue the sequence cached in `past`."""
    B, T = input_ids.shape
    start = 0 if past[0]["k"] is None else past[0]["k"].shape[2]  # positions already cached
    cos, sin = model.rope_cos[start:start + T], model.rope_sin[start:start + T]  # (T, D)
    x = model.embed_tokens(input_ids)  # (B, T, C)
    for layer, cache in zip(model.layers, past, strict=True):
        attn = layer.self_attn
        h = layer.input_layernorm(x)
        # (B, T, C) -> (B, T, heads, D) -> (B, heads, T, D)
        q = attn.q_proj(h).view(B, T, attn.num_heads, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(h).view(B, T, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
        v = attn.v_proj(h).view(B, T, attn.num_kv_heads, attn.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache["k"] is not None:  # append to the keys and values of earlier positions
            k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
        cache["k"], cache["v"] = k, v  # (B, K, S, D) with S = start + T
        groups = attn.num_heads // attn.num_kv_heads
        k, v = repeat_kv(k, groups), repeat_kv(v, groups)  # (B, H, S, D)
        scores = q @ k.transpose(-2, -1) / attn.head_dim**0.5  # (B, H, T, S)
        query_pos = torch.arange(start, start + T)[:, None]  # absolute positions of the queries
        visible = torch.arange(start + T)[None, :] <= query_pos  # (T, S) causal mask
        weights = torch.softmax(scores.masked_fill(~visible, NEG_INF), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(B, T, -1)  # (B, H, T, D) -> (B, T, C)
        x = x + attn.o_proj(out)
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return model.lm_head(model.norm(x))


def greedy_with_cache(model, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    """Greedy generation: prefill the prompt once, then feed one token per step."""
    past = [{"k": None, "v": None} for _ in model.layers]
    ids, new_input = list(prompt_ids), torch.tensor([prompt_ids])
    for _ in range(max_new_tokens):
        next_id = int(forward_with_cache(model, new_input, past)[0, -1].argmax())
        ids.append(next_id)
        new_input = torch.tensor([[next_id]])  # (1, 1): only the new token goes in
    return ids


cached_ids = greedy_with_cache(model, prompt, 60)
print(repr(tokenizer.decode(cached_ids[1:])))

# %% [markdown]
# The model's own `generate` without a cache runs the full sequence at every step. Our cached
# loop must produce exactly the same tokens, and its logits must match a full forward pass.

# %%
uncached_ids = model.generate(prompt, 60, temperature=0.0, use_cache=False).tolist()
assert cached_ids == uncached_ids
past = [{"k": None, "v": None} for _ in model.layers]
forward_with_cache(model, torch.tensor([cached_ids[:20]]), past)  # prefill 20 tokens
step_logits = forward_with_cache(model, torch.tensor([cached_ids[20:21]]), past)[0, -1]
with torch.no_grad():
    full_logits = model(torch.tensor([cached_ids[:21]]))[0, -1]
torch.testing.assert_close(step_logits, full_logits, atol=1e-4, rtol=1e-4)
assert past[0]["k"].shape == (1, model.config.num_kv_heads, 21, model.config.head_dim)
print("same tokens as model.generate(use_cache=False); cached logits match a full forward pass")

# %% [markdown]
# The library's `attention.KVCache` does the same with preallocated tensors, filled in place
# instead of concatenated, and `model.generate` uses it by default (`use_cache=True`).

# %%
assert model.generate(prompt, 60, temperature=0.0).tolist() == cached_ids

# %% [markdown]
# ### How much faster?
#
# Without the cache, producing the token at position $L$ costs a forward pass over $L$ tokens;
# with it, a forward pass over one token plus attention over $L$ cached keys. We time exactly
# that marginal step at several lengths: the full forward pass on the first $L$ tokens, against
# one cached step after a prefill of $L-1$ tokens (the prefill itself is not timed). Each timing
# is the best of seven, on one thread, to filter out other programs competing for the CPU.

# %%
def best_time(function, repeats: int = 7, setup=None) -> float:
    """Shortest wall-clock time of `function` over `repeats` runs, in seconds."""
    times = []
    for _ in range(repeats):
        state = setup() if setup else None
        start = time.perf_counter()
        function(state)
        times.append(time.perf_counter() - start)
    return min(times)


max_len = model.config.max_seq_len
sequence = torch.randint(0, tokenizer.vocab_size, (1, max_len),  # content does not matter here
                         generator=torch.Generator().manual_seed(0))
lengths = [8, 32, 64, 128, 192, max_len]
without_cache, with_cache = [], []
threads = torch.get_num_threads()
torch.set_num_threads(1)  # a busy machine disturbs one-thread timings far less
try:
    with torch.no_grad():
        for length in lengths:
            without_cache.append(best_time(lambda _, n=length: model(sequence[:, :n])))

            def prefilled(n=length):
                caches = model.make_caches(1)
                model(sequence[:, :n - 1], caches)
                return caches

            with_cache.append(best_time(
                lambda caches, n=length: model(sequence[:, n - 1:n], caches), setup=prefilled))
finally:
    torch.set_num_threads(threads)
for length, plain, cached in zip(lengths, without_cache, with_cache, strict=True):
    print(f"token at position {length:>3}: {1e3 * plain:.2f} ms without cache, "
          f"{1e3 * cached:.2f} ms with cache")

# %%
assert with_cache[-1] < without_cache[-1]  # at long lengths, the cache is faster

# %%
viz.plot_lines(lengths, {"without cache (full forward pass)": [1e3 * t for t in without_cache],
                         "with KV cache (one new token)": [1e3 * t for t in with_cache]},
               title="Cost of the next token against sequence length",
               xlabel="position of the new token (sequence length)",
               ylabel="time per token (ms, one thread, best of 7)", markers=True)

# %% [markdown]
# Without the cache the cost grows with the length, and so the whole generation is quadratic;
# with it the cost stays nearly flat. The flat part is not zero: for a model this small, a
# forward pass is mostly fixed overhead (launching a few dozen small operations), and the cached
# step adds its own bookkeeping on top (writing the new key and value into the cache, slicing the
# filled part out of it, attending over it). At short lengths that bookkeeping costs about as
# much as recomputing a prefix of a few tokens, so at position 8 the cache saves little or
# nothing: the two points nearly coincide, and on a machine where the fixed overhead of the
# cached step is larger, the cache is the slower of the two there. The savings grow with the
# model and the context; on a GPU the uncached forward pass is parallel and hides some of the
# cost, but the cache still wins at long lengths. The price is memory: two tensors of shape
# (batch, kv heads, max length, head size) per layer, which is why large models share key/value
# heads between query heads (grouped-query attention, chapter 4).

# %% [markdown]
# ## What the trained model attends to
#
# Chapter 4 drew attention maps of a random model; now the weights have been trained. Each
# panel shows one head: row $t$ is the distribution with which the token at position $t$ reads
# the positions up to $t$. We feed a sentence in the style of the training stories.

# %%
sentence = "Lily had a red ball. She threw the ball to her dog, and the dog ran to get it."
viz.plot_model_attention(model, tokenizer, sentence)

# %% [markdown]
# A map is easier to read with a few numbers. For every head we measure, averaged over the
# queries after the first, how much weight goes to the token itself, to the token just before
# it, and to the first token of the text. For comparison, the first row is a head that spreads
# its weight evenly over the positions it can see.

# %%
maps, labels = viz.attention_for_text(model, tokenizer, sentence)  # per layer (H, T, T)
T = len(labels)
uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]  # (T, T)


def head_profile(weights: torch.Tensor) -> tuple[float, float, float]:
    """Mean weight on itself, on the previous token and on the first token; weights (T, T)."""
    own = torch.diagonal(weights)[1:].mean()
    previous = torch.diagonal(weights, offset=-1).mean()
    first = weights[1:, 0].mean()
    return own.item(), previous.item(), first.item()


baseline = head_profile(uniform)
head_stats = {(layer, head): head_profile(weights[head])
              for layer, weights in enumerate(maps) for head in range(weights.shape[0])}
print(f"{T} tokens\n layer head    self  previous  first")
print(f"uniform head     {baseline[0]:5.2f}  {baseline[1]:8.2f}  {baseline[2]:5.2f}")
for (layer, head), (own, previous, first) in head_stats.items():
    print(f"{layer:>6} {head:>4}   {own:5.2f}  {previous:8.2f}  {first:5.2f}")

# %%
previous_token_head = max(head_stats, key=lambda key: head_stats[key][1])
first_token_head = max(head_stats, key=lambda key: head_stats[key][2])
print("most previous-token weight: layer {}, head {}".format(*previous_token_head))
print("most first-token weight: layer {}, head {}".format(*first_token_head))

# %%
assert previous_token_head == (1, 2) and first_token_head == (3, 0)  # the heads named below
assert head_stats[previous_token_head][1] > 3 * baseline[1]
assert sorted(head_stats, key=lambda key: head_stats[key][1])[-3:] == [(2, 2), (2, 3), (1, 2)]
for weights in maps:
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))

# %% [markdown]
# Three kinds of head show up in the grid and the table, and one kind that large models have
# does not:
#
# - **Local heads** draw a bright band just below the diagonal: each token reads the token
#   before it, or the one before that. Layer 1 head 2 is the clearest, with 0.64 of its weight
#   on the previous token on average (0.98 where "the" reads "threw"). The next two, layer 2
#   head 3 with 0.38 and layer 2 head 2 with 0.30, draw fainter bands: only about half of the
#   tokens (10 and 11 of the 21 after the first) read the previous token most, and many of the
#   others read a token further back; in layer 2 head 3 the second "ball" puts 0.97 of its
#   weight on "threw", two back. This is what the model needs to finish a word split into
#   several tokens or to continue a phrase such as "the ball".
# - **Stripe heads** draw vertical lines: many queries read the same key. In layer 3 head 1
#   the line moves along the sentence from one landmark to the next: "She" and "threw" read
#   the full stop before them (0.79 and 0.53), the five tokens from "the" to the first "dog"
#   read "threw" (0.36 to 0.73), and the five from the second "dog" to "it" read "and" (0.39
#   to 0.68). Layer 3 head 0 follows the subject: every token of the first sentence reads
#   "Lily" (0.73 to 0.98), the tokens from "threw" to the second "dog" give "She" about twice
#   the weight they give "Lily" (0.39 against 0.19 on average), and the second "to" reads
#   "dog" (0.45), the subject of "ran". Layer 0 head 3 draws short lines under verbs: the
#   first "to", the comma and "and" read "threw" (0.58, 0.74 and 0.83), and the second "to"
#   reads "ran" (0.98). A fainter line runs under the first full stop in layer 2 head 0, which
#   the tokens after it read with 0.23 of their weight on average. These heads keep track of
#   what the sentence is about and of the verb or boundary that began the current clause.
# - **Diffuse heads** spread their weight over the whole context and act like an average of
#   the words so far. Layer 0 head 2 is one: its three numbers are within 0.02 of the uniform
#   head's, and after the first five rows no cell holds a quarter of its row's weight. The
#   three numbers alone can mislead, though: layer 1 head 1's are within 0.03 of the uniform
#   head's too, yet its map has a faint line under the first "dog", which the comma, "and" and
#   "the" after it read with about a third of their weight (0.34, 0.35 and 0.32).
# - **No attention sink.** Softmax must put a head's weight somewhere, and in large models a
#   head with nothing to look for tends to leave it on the first position (the *attention
#   sink* of Xiao et al., 2023). The head with the most first-token weight here, layer 3 head
#   0, gives it 0.33 on average against the uniform head's 0.13, but it is the subject head
#   above, not a sink: every query up to "She" reads "Lily" with more than half of its weight,
#   and no later query gives "Lily" as much as a third. A sink would hold its weight on the
#   first position in every row.
#
# The model has about a million parameters and was trained for 2,400 steps, so these are
# tendencies rather than the sharp specialists of large models: its clearest previous-token
# head gives that token 0.64 of its weight on average, not all of it. Every reader studies the
# same stored weights, so the heads named here are the ones you see.

# %%
she, threw, comma, first_and, ran = (labels.index(label) for label in
                                     ("␣She", "␣threw", ",", "␣and", "␣ran"))  # first occurrences
full_stop, first_to, first_dog = labels.index("."), labels.index("␣to"), labels.index("␣dog")
second_to, second_dog = labels.index("␣to", first_to + 1), labels.index("␣dog", first_dog + 1)
# local: in layer 2, heads 2 and 3 read the previous token most for about half of the tokens
for head in (2, 3):
    keys = maps[2][head].argmax(-1).tolist()
    assert 8 <= sum(keys[q] == q - 1 for q in range(1, T)) <= 13
assert maps[2][3][threw + 2].argmax() == threw  # the second "ball" reads "threw", two back
# stripes: layer 3 head 1 reads the full stop, then "threw", then "and"
landmark = maps[3][1].argmax(-1).tolist()
assert landmark[she:threw + 1] == [full_stop] * 2
assert landmark[threw + 1:first_dog + 1] == [threw] * (first_dog - threw)
assert landmark[second_dog:T - 1] == [first_and] * (T - 1 - second_dog)
# layer 3 head 0 reads the subject: "Lily", then "She"
subject = maps[3][0]  # (T, T)
assert subject[1:she + 1, 0].min() > 0.5 and subject[she + 1:, 0].max() < 1 / 3
later = slice(threw, second_dog + 1)
assert subject[later, she].mean() > 1.5 * subject[later, 0].mean()
assert subject[second_to].argmax() == second_dog
# layer 0 head 3 reads verbs
verb = maps[0][3].argmax(-1).tolist()
assert [verb[q] for q in (first_to, comma, first_and)] == [threw] * 3
assert verb[second_to] == ran
# diffuse: layer 0 head 2; layer 1 head 1 only looks diffuse in the table
assert all(abs(a - b) < 0.02 for a, b in zip(head_stats[(0, 2)], baseline, strict=True))
assert maps[0][2][5:].max() < 0.25
assert all(abs(a - b) < 0.03 for a, b in zip(head_stats[(1, 1)], baseline, strict=True))
assert maps[1][1][comma:comma + 3, first_dog].min() > 0.3

# %% [markdown]
# The explorer shows one layer and head at a time, larger; type another sentence to see how the
# same heads behave on it. It opens on the head with the most previous-token weight, layer 1
# head 2. Most tokens put their largest weight on the token just before it ("the" on "threw",
# "her" on "to", "it" on "get"): 18 of the 21 after the first. "red" reads the token two back,
# "had"; the first "to" splits its weight between the two tokens before it and reads the
# farther, "the", by a hair (0.42 against 0.40 for "ball"); and of the two full stops, the
# first reads "ball" before it and the second reads itself (0.29, against 0.20 for "to").

# %%
previous_head_map = maps[previous_token_head[0]][previous_token_head[1]]  # (T, T)
strongest_key = previous_head_map.argmax(-1).tolist()
reads_previous = sum(strongest_key[q] == q - 1 for q in range(1, T))
full_stops = [q for q in range(T) if labels[q] == "."]
print(f"{reads_previous} of the {T - 1} tokens after the first read the previous token most; "
      f"the full stops at positions {full_stops} read positions "
      f"{[strongest_key[q] for q in full_stops]}")

# %%
assert reads_previous >= 17
assert [strongest_key[q] for q in full_stops] == [full_stops[0] - 1, full_stops[1]]

# %%
attention_explorer = AttentionExplorer(model, tokenizer, text=sentence,
                                       layer=previous_token_head[0],
                                       head=previous_token_head[1])
attention_explorer

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your answer, which starts as a placeholder (`...`, or a function
# whose body is `...`), and a check cell that prints whether the answer is right, with a hint if
# it is not. The answers are in the solutions notebook for this chapter.
#
# **Exercise 1.** Generating `N` tokens after a prompt of `P` tokens: how many token positions
# go through the model in total without a cache, and how many with one? Write a function of `P`
# and `N` that returns both, as a pair. The check counts the positions that enter the embedding
# layer while `model.generate` runs, for several prompt lengths and numbers of new tokens.

# %%
def positions(P: int, N: int) -> tuple[int, int]:
    """(positions without a cache, positions with one) for N new tokens after P prompt tokens."""
    ...  # your answer


# %%
ch08.exercise_1(positions)

# %% [markdown]
# **Exercise 2.** After the prompt `"Tom and his mom went to the"` (preceded by the
# end-of-text id, as every prompt in this chapter), how many tokens does top-p sampling with
# $p = 0.8$ keep at temperature 1, and how many at temperature 0.5? Run the model for the
# next-token logits, then use your own `top_p_filter` or count directly from the sorted
# probabilities. Before you compute it, guess whether the lower temperature keeps fewer tokens.

# %%
kept = ...  # your answer: (count at temperature 1, count at temperature 0.5)

# %%
ch08.exercise_2(kept)

# %% [markdown]
# **Exercise 3 (experiment).** Greedy decoding repeats itself; how much does the temperature
# change that? Generate 240 new tokens after `prompt` (they fill most of the 256-token
# context) at several temperatures from 0 (greedy) to 1.5, each with
# `model.generate(prompt, 240, temperature=t, generator=torch.Generator().manual_seed(seed))`
# and one `seed` of your choice, and keep the new token ids (without the prompt) in
# `continuations = {temperature: ids}`. For each, measure the fraction of its 4-grams (runs of
# four consecutive token ids) that already occurred earlier in the same continuation, and store
# the results as `repetition = {temperature: fraction}`. The check measures the fractions again
# from your continuations and generates each of them again from your seed. Then read a sample at
# each end of the range: which temperatures read best, and what does a low fraction of repeats
# not guarantee?

# %%
seed = ...  # your answer: the seed of every generator
continuations = ...  # your answer: {temperature: the 240 new token ids}
repetition = ...  # your answer: {temperature: fraction of repeated 4-grams}

# %%
ch08.exercise_3(repetition, continuations, seed)

# %% [markdown]
# **Exercise 4.** Write the sampler: `next_token(logits, temperature, top_k, top_p, generator)`
# picks one token per row of `logits` (B, V) and returns their ids (B,). Temperature 0 means
# greedy (the argmax, whatever top-k and top-p say); otherwise divide by the temperature, cut
# with top-k (keeping every token tied with the k-th) and then top-p (the smallest set of most
# likely tokens whose probability reaches $p$), and draw from the softmax of what is left with
# `torch.multinomial(probs, 1, generator=generator)`. `top_k` and `top_p` may each be `None`
# (no cut). The check runs your function and the library's `generation.sample_next_token`
# with generators seeded alike on many rows, so a right answer draws exactly the same tokens,
# and names the mistake it recognises.

# %%
def next_token(logits, temperature, top_k, top_p, generator):
    """logits (B, V) -> token ids (B,), drawn with `generator` (temperature 0: the argmax)."""
    ...


# %%
ch08.exercise_4(next_token)

# %% [markdown]
# **Exercise 5.** Write one decoding step of attention with a KV cache, the way the library's
# `KVCache` works: the cache is allocated once for the longest sequence and filled in place.
# `decode_step(x, layer, cache_k, cache_v, position, cos, sin)` takes the normalised stream of
# one new token, `x` (B, 1, C), at absolute position `position`; `layer` holds chapter 6's
# attention weights `wq` (H·D, C), `wk` and `wv` (K·D, C) and `wo` (C, H·D); `cache_k` and
# `cache_v` (B, K, S, D) hold the keys (already turned by RoPE) and the values of positions
# 0 .. position − 1, and zeros after them; `cos` and `sin` (S, D) are the tables for every
# position. Turn the new query and key by RoPE at their position, write the key and value into
# the caches at index `position`, attend from the query to the filled part of the cache, and
# return the attention output after `wo`, (B, 1, C). The check compares the output and the
# caches after the call with the library's attention on random inputs (1, 2 and 4 query heads
# per key/value head) and names the mistake it recognises.

# %%
def decode_step(x, layer, cache_k, cache_v, position, cos, sin):
    """Attention output (B, 1, C) for one new token at `position`; writes its key and value
    into cache_k and cache_v (B, K, S, D) at index `position`."""
    ...


# %%
ch08.exercise_5(decode_step)

# %% [markdown]
# ## Your sampler writes a story
#
# With `next_token` written (exercise 4), the stored model can tell a story through it: below,
# every token is drawn by your function from the model's logits for the story so far
# (temperature 0.8, top-k 50, top-p 0.9, seed 0), and the same story is drawn again with the
# library's `sample_next_token` from a generator seeded alike, to compare token for token. Until
# you write `next_token`, nothing stands in for it, and the cell says so.

# %%
your_story = pieces.sample_story(next_token, model, tokenizer, "Once upon a time")

# %%
if your_story is not None:
    assert your_story["ids"] == your_story["library_ids"], "your sampler drew other tokens"

# %% [markdown]
# ## What we built, and where it lives in the library
#
# | piece | from scratch here | library |
# |---|---|---|
# | greedy, temperature, top-k, top-p | `greedy_filter`, `top_k_filter`, `top_p_filter`, `sampling_filter` | `generation.filter_logits` |
# | drawing a token | your `next_token` (exercise 4) | `generation.sample_next_token` |
# | a story drawn by your sampler | your `next_token`, run by `pieces.sample_story` | `generation.generate` |
# | one cached attention step | your `decode_step` (exercise 5) | `attention.KVCache`, `Attention.forward` with a cache |
# | generation loop with a KV cache | `forward_with_cache`, `greedy_with_cache` | `generation.generate`, `attention.KVCache`, `Transformer.make_caches` |
# | what a setting cuts | | `viz.plot_next_token_choice`, `widgets.SamplingExplorer` |
# | attention of the trained model | head statistics | `viz.plot_model_attention`, `widgets.AttentionExplorer` |
#
# Chapter 10 exports this model to Hugging Face `transformers` and checks that both libraries
# compute the same logits and generate the same text.
