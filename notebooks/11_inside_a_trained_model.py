# %% [markdown]
# # 11. Inside a trained model
#
# So far we have built a model, trained one and generated text with it. This chapter opens a
# trained model up and measures what it does inside. The subject is **stories260K**, the
# smallest model Andrej Karpathy trained on TinyStories with llama2.c: 260 thousand parameters
# (64 dimensions, 5 layers of 8 query heads sharing 4 key/value heads, a 512-token
# vocabulary, a 512-token context), small enough to study completely on a laptop and still
# good enough to write readable stories. `transformer_lib.data.llama2c` reads its checkpoint into
# our own `Transformer`, so every tool of the book works on it. We will measure:
#
# - **attention patterns**: per head, how much weight goes to the previous token, to the first
#   token, and (on a repeated random sequence) to where an *induction head* would look;
# - **head ablation**: which heads the validation loss actually depends on;
# - the **logit lens**: what the model would predict if it stopped after each layer;
# - **RoPE in practice**: which rotation frequencies the queries and keys really use;
# - **two models on the same text**: stories260K against the book's own stored model, in bits
#   per byte, which does not depend on the tokenizer.
#
# Every claim below is a measurement printed beside it and asserted in the next cell.

# %%
import math

import torch

from transformer_lib import book
from transformer_lib.analysis import interpret
from transformer_lib.book import viz
from transformer_lib.book.exercises import ch11
from transformer_lib.book.widgets import AttentionExplorer, SamplingExplorer
from transformer_lib.data import book_stories
from transformer_lib.data.tokenizer import load_tokenizer
from transformer_lib.interop import from_llama2c
from transformer_lib.model import parameter_counts
from transformer_lib.model.rope import rope_frequencies

torch.manual_seed(0)
torch.set_printoptions(precision=2, sci_mode=False)
# Both models are tiny: one thread runs them faster than several threads waiting on each other
# (on a busy 2-core machine, two threads made generation many times slower).
torch.set_num_threads(1)

# %% [markdown]
# ## The model
#
# `from_llama2c("stories260K")` finds `stories260K.bin` in the directory named by
# `$LLAMA2C_PATH` (or downloads it once from the Hugging Face hub), checks its header against
# the file's size and copies every weight into a `Transformer`. llama2.c rotates *interleaved*
# RoPE pairs and our library split halves (chapter 3), so the query and key rows are permuted
# on the way in. Its tokenizer, `tok512`, is a 512-piece sentencepiece vocabulary that
# `load_tokenizer` reads too.

# %%
model = from_llama2c("stories260K")
tokenizer = load_tokenizer("tok512")
config = model.config
print(config)
print(f"{model.num_parameters():,} parameters; tokenizer {tokenizer.name}: "
      f"{tokenizer.vocab_size} ids, BOS = {tokenizer.bos_id}")

# %%
assert (config.d_model, config.num_layers, config.num_heads, config.num_kv_heads) == (64, 5, 8, 4)
assert config.vocab_size == tokenizer.vocab_size == 512 and config.max_seq_len == 512
assert model.num_parameters() == parameter_counts(model)["total"] == 260_032

# %% [markdown]
# llama2.c's TinyStories models were trained on stories that each begin with the BOS token
# (id 1), so a story starts from `[BOS]`. Greedy decoding from BOS alone:

# %%
BOS = tokenizer.bos_id
greedy_ids = model.generate(torch.tensor([[BOS]]), max_new_tokens=200, temperature=0.0)[0]
greedy_story = tokenizer.decode(greedy_ids[1:].tolist())
print(greedy_story)

# %%
assert greedy_story.startswith("Once upon a time") and len(greedy_ids) == 201

# %% [markdown]
# ## Attention maps on a validation story
#
# The book's validation extract (`book_stories("validation")`, the first 1,000 validation
# stories of TinyStories) is held out from the book's own training. (stories260K was trained on
# llama2.c's copy of the TinyStories data, which may contain some of these stories; nothing
# below depends on it not having seen them.) We read the first story, with BOS in front, and collect every head's attention weights with `model.attention_maps`: one
# (batch, heads, T, T) tensor per layer.

# %%
validation = book_stories("validation")
story = validation[0]
story_ids = torch.tensor([[BOS] + tokenizer.encode(story)])
story_maps = model.attention_maps(story_ids)
print(f"{story_ids.shape[1]} tokens; {len(story_maps)} maps of shape "
      f"{tuple(story_maps[0].shape)}")
print(story[:120] + "...")

# %% [markdown]
# All 40 heads, on the first 16 tokens (rows are queries, columns keys; each row sums to 1):

# %%
first_ids = story_ids[:, :16]
viz.plot_attention(model.attention_maps(first_ids), viz.token_labels(tokenizer, first_ids[0]),
                   title="stories260K: attention of every layer and head (first 16 tokens "
                         "of a validation story)")

# %% [markdown]
# Some heads draw a clear line just below the diagonal: they look at the previous token. To
# put numbers on what we see, we score every head over the whole story
# (`interpret.previous_token_scores`, `interpret.first_token_scores`):
#
# - **previous-token score**: the mean weight a query at position $i$ puts on position $i-1$,
#   over every query $i \ge 1$;
# - **first-token ("sink") score**: the mean weight on position 0, the BOS token. Many large
#   models park most of their attention there when a head has nothing to do (an *attention
#   sink*).
#
# The third pattern needs a special input. An **induction head** completes a repeated pattern:
# if the text earlier contained "A B", then at a later "A" it attends to the token after the
# earlier "A", the "B", and copies it. On random tokens repeated twice, nothing but such a head
# can predict the second copy. The **induction score** is the mean weight a query in the second
# copy puts on the token after its earlier occurrence (`interpret.induction_scores`), and the
# loss on the second copy against the first tells whether the model uses it. We draw the random
# tokens from the merged pieces (ids 259 to 511), not from the 256 byte-fallback ids that
# stories almost never contain.

# %%
torch.manual_seed(0)
REPEAT = 50
repeated = interpret.repeated_random_tokens(8, REPEAT, low=259, high=512, start_id=BOS)
repeated_maps = model.attention_maps(repeated)
scores = {
    "previous token": interpret.previous_token_scores(story_maps),
    "first token (BOS)": interpret.first_token_scores(story_maps),
    "induction (random tokens, repeated)": interpret.induction_scores(repeated_maps, REPEAT),
}
first_copy_loss, second_copy_loss = interpret.copy_losses(model, repeated, REPEAT)
viz.plot_head_scores(scores, title="stories260K: what each head attends to",
                     value_label="mean attention weight", vmin=0.0, vmax=1.0)

# %%
for name, values in scores.items():
    layer, head = divmod(int(values.argmax()), config.num_heads)
    print(f"{name:36s} strongest head: layer {layer}, head {head}: {float(values.max()):.2f}"
          f" (mean over heads {float(values.mean()):.2f})")
print(f"loss on the first copy {first_copy_loss:.1f} nats/token, "
      f"on the second copy {second_copy_loss:.1f}")

# %%
previous, sink, induction = scores.values()
strong = (previous > 0.5).nonzero().tolist()  # (layer, head) of the clear previous-token heads
assert len(strong) >= 3 and {layer for layer, _ in strong} == {1, 3}
assert float(sink.max()) < 0.2  # no head parks even a fifth of its attention on BOS
assert float(induction.max()) < 0.05  # no head looks where an induction head would
assert first_copy_loss > 1.5 * math.log(config.vocab_size)  # far worse than a uniform guess
assert second_copy_loss > first_copy_loss - 1.0  # and the second copy is barely easier

# %% [markdown]
# What the measurement shows:
#
# - stories260K has **previous-token heads**: four heads, three in layer 1 and one in layer 3,
#   put more than half of their weight on the token just before (the brightest cells of the
#   first panel; the strongest, layer 1 head 3 and layer 3 head 6, both score 0.61).
# - it has **no attention sink**: no head puts more than a fifth of its weight on BOS.
# - it has **no induction heads**: on repeated random tokens no head puts even 5% of its weight
#   where an induction head would, and the second copy is barely easier to predict than the
#   first (the loss falls by well under 1 nat per token, from a level far above the $\ln 512
#   \approx 6.2$ nats of a uniform guess: the model is confidently wrong about random pieces).
#   Induction heads form even in two-layer models trained on enough varied text (Olsson et al.,
#   2022); this one, trained only on simple stories, has not formed them.
#
# The strongest previous-token head, on its own:

# %%
layer, head = divmod(int(previous.argmax()), config.num_heads)
viz.plot_attention(model.attention_maps(first_ids), viz.token_labels(tokenizer, first_ids[0]),
                   layers=layer, heads=head,
                   title=f"The strongest previous-token head: layer {layer}, head {head}")

# %% [markdown]
# ## Which heads matter: ablation
#
# A head's attention pattern says what it looks at, not whether the model needs it. To find
# out, we **ablate** one head at a time: set its output to zero (the slice of `o_proj`'s input
# that belongs to it, through a forward pre-hook, so the model's code is untouched) and measure
# how much the validation loss rises. `interpret.head_ablation_losses` does all 40 ablations;
# it computes the residual stream before each layer once and runs that layer's eight ablations
# as one batch. To keep the chapter fast we use the first 256 tokens (BOS included) of each of
# the first 16 validation stories, about 4,000 predictions.

# %%
ABLATION_STORIES = 16
rows = [[BOS] + tokenizer.encode(text)[:255] for text in validation[:ABLATION_STORIES]]
windows = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
targets = torch.zeros(len(rows), windows.shape[1] - 1, dtype=torch.bool)  # real targets only
for row, ids in enumerate(rows):
    windows[row, :len(ids)] = torch.tensor(ids)
    targets[row, :len(ids) - 1] = True
baseline, ablated = interpret.head_ablation_losses(model, windows, targets)
increase = ablated - baseline
print(f"{int(targets.sum()):,} predictions; loss with every head: {baseline:.3f} nats/token")
viz.plot_head_scores({"loss increase when the head is zeroed": increase},
                     title="stories260K: head ablation on validation stories",
                     value_label="loss increase (nats/token)", vmin=0.0, annotate="{:.3f}",
                     cmap="magma")

# %%
order = increase.flatten().argsort(descending=True)
print("costliest heads:  " + ", ".join(
    f"({int(i) // 8},{int(i) % 8}) +{float(increase.flatten()[i]):.3f}" for i in order[:5]))
print("cheapest heads:   " + ", ".join(
    f"({int(i) // 8},{int(i) % 8}) +{float(increase.flatten()[i]):.3f}" for i in order[-5:]))
by_layer = increase.sum(dim=1)
for index in previous.flatten().argsort(descending=True)[:3]:
    rank = int((order == index).nonzero()[0, 0]) + 1
    print(f"previous-token head ({int(index) // 8},{int(index) % 8}), score "
          f"{float(previous.flatten()[index]):.2f}: +{float(increase.flatten()[index]):.3f}, "
          f"rank {rank} of 40 by cost")
print("summed by layer:  " + ", ".join(f"layer {i}: {float(v):.3f}" for i, v in
                                         enumerate(by_layer)))
correlation = {name: float(torch.corrcoef(torch.stack([values.flatten(), increase.flatten()]))[0, 1])
               for name, values in list(scores.items())[:2]}
print("correlation with the loss increase: " + ", ".join(
    f"{name} score {value:.2f}" for name, value in correlation.items()))

# %%
assert float(increase.min()) > 0  # every head's removal costs something
assert float(increase.max()) < 0.1  # no single head is indispensable
assert float(increase.max()) < 0.06 * baseline  # the largest cost: a few percent of the loss
top_previous = previous.flatten().argsort(descending=True)[:3]
assert all(int((order == i).nonzero()[0, 0]) >= 10 for i in top_previous)  # none in the top 10
assert int(by_layer.argmax()) == config.num_layers - 1  # the last layer's heads matter most
assert correlation["previous token"] < 0  # the striking pattern is not where the cost is

# %% [markdown]
# Every head costs something when removed, but none much: the largest increase, +0.058 for
# layer 4 head 4, is about 5% of the 1.172 nats/token loss. The model spreads its work. The last
# layer's heads matter most in total (0.201 of the summed increases). And the striking
# previous-token heads are *not* the costly ones: the correlation between a head's
# previous-token score and its cost is negative (−0.53), and none of the three strongest
# previous-token heads is among the ten costliest (they rank 15th, 19th and 31st). Perhaps
# several heads share that job, so removing one loses little; the costliest head, layer 4
# head 4, has a diffuse pattern (a previous-token score of 0.04) and carries something no
# other head does. Patterns suggest hypotheses; ablation tests them. (Exercise 4 removes
# three heads at once.)
#
# ## The logit lens
#
# The residual stream carries one vector per position from the embedding to the output head,
# and every layer adds to it. The **logit lens** (nostalgebraist, 2020) asks what the model
# would predict if it stopped early: apply the final RMSNorm and the output head to the stream
# after each layer (`interpret.logit_lens`). The last reading is the model's own output.

# %%
prompts = ["Once upon a time, there was a little girl named Lily. She loved to play with her",
           "Tom and Sam went to the park. Tom said to",
           "The sun was shining and the birds were"]
streams = ["embedding"] + [f"after layer {i}" for i in range(config.num_layers)]
final_probability, top_guesses = {}, {}
for prompt in prompts:
    ids = torch.tensor([[BOS] + tokenizer.encode(prompt)])
    probs = interpret.logit_lens(model, ids)[:, 0, -1].softmax(-1)  # (streams, V)
    top = probs.argmax(-1)
    final = int(top[-1])
    final_probability[f"...{prompt[-22:]}"] = probs[:, final].tolist()
    top_guesses[prompt] = [viz.decode_piece(tokenizer, int(t)) for t in top]
    guesses = ", ".join(f"{piece!r} {float(p):.2f}"
                        for piece, p in zip(top_guesses[prompt], probs.max(-1).values,
                                            strict=True))
    print(f"...{prompt[-30:]!r} -> {top_guesses[prompt][-1]!r}\n    top guess per stream: "
          f"{guesses}")

# %%
assert all(values[0] < 0.01 for values in final_probability.values())  # not in the embedding
first, second, third = top_guesses.values()
assert first[-1] == " to" and " to" not in first[:-1]  # only the output settles on " to"
assert first[:4] == [" her"] * 4  # until after layer 2 the stream reads as its input
assert second[3:] == [" the"] * 3 and " the" not in second[:3]  # " the" from layer 2 on
assert third[2] == third[-1] == " very" and third[3] == third[4] == " a"  # a detour
said_to = list(final_probability.values())[1]
assert max(said_to) == said_to[4] > 2 * said_to[5]  # peak after layer 3, halved at the output

# %% [markdown]
# (Pieces are printed as the vocabulary holds them, with their leading space: `' to'` is the
# piece "▁to".) The embedding's own reading guesses the input token itself: the output head
# shares its weights with the embedding (`tie_embeddings`), so a token's vector scores highest
# against itself. The final prediction has under 1% there, and the layers build it up in
# different ways:
#
# - "...play with her" becomes " to" (the start of " toys": 512 pieces spell most words in
#   parts) only in the last layer; up to and including the stream after layer 2 it still
#   reads as " her";
# - "...Tom said to" settles on " the" after layer 2 and keeps it; its probability peaks after
#   layer 3 (0.81) and the last layer more than halves it (0.36), spreading probability over
#   other continuations (the top guess stays the same);
# - "...the birds were" guesses " very" after layer 1, switches to " a" after layers 2 and 3,
#   and returns to " very" at the output.
#
# The probability of the model's final prediction, read off each stream:

# %%
viz.plot_lines(range(len(streams)), final_probability,
               title="Logit lens: probability of the final prediction after each layer",
               xlabel="residual stream read (0 = embedding, k = after layer k − 1)",
               ylabel="probability of the final next token", markers=True)

# %% [markdown]
# And for every position of the first prompt at once: each cell is the top guess for the
# *next* token read off one stream, coloured by its probability (␣ marks a leading space, so
# a lone ␣ is the space piece itself).

# %%
lens_ids = torch.tensor([[BOS] + tokenizer.encode(prompts[0])])
lens_probs = interpret.logit_lens(model, lens_ids)[:, 0].softmax(-1)[:, -12:]  # (S, 12, V)
top_probability, top_ids = lens_probs.max(-1)
top_labels = [[viz.decode_piece(tokenizer, int(t)) for t in row] for row in top_ids]
viz.plot_logit_lens(top_probability, top_labels, viz.token_labels(tokenizer, lens_ids[0, -12:]),
                    title="Logit lens on the first prompt (last 12 positions)",
                    row_labels=streams)

# %% [markdown]
# ## RoPE in a trained model
#
# Chapter 3 gave each pair of a head's dimensions its own rotation speed: pair $i$ turns by
# $\theta^{-2i/D}$ radians per token. stories260K has heads of only $D = 8$ dimensions, so
# just four pairs, with wavelengths (tokens per full turn) from about 6 to about 6,000: the two
# slowest never complete a turn within the 512-token context.

# %%
print("wavelengths (tokens per turn):",
      [round(float(w)) for w in 2 * math.pi / rope_frequencies(config.head_dim,
                                                                config.rope_theta)])
viz.plot_rope_spectrum(head_dim=config.head_dim, theta=config.rope_theta,
                       context_length=config.max_seq_len)

# %% [markdown]
# Which of these does the trained model use? A pair can only matter for attention if the
# queries and keys put some of their length into it. `interpret.rope_pair_energy` measures, in
# every layer, the share of the queries' (and keys') squared norm that each pair carries, over
# all heads and positions of the validation story. (A rotation does not change a pair's
# length, so this can be measured before or after RoPE.)

# %%
energy = interpret.rope_pair_energy(model, story_ids)
for name in ("query", "key"):
    print(f"{name} share per pair (rows: layers 0-4):\n{energy[name]}")
viz.plot_rope_pair_energy({"queries": energy["query"], "keys": energy["key"]},
                          head_dim=config.head_dim, theta=config.rope_theta,
                          context_length=config.max_seq_len,
                          title="stories260K: share of query/key norm in each RoPE pair")

# %%
slowest, fastest = energy["query"][:, -1], energy["query"][:, 0]
assert (energy["query"].argmax(-1) == 3).all() and (energy["key"].argmax(-1) == 3).all()
assert float(slowest.min()) > 0.5 and float(fastest.max()) < 0.1
assert float(energy["key"][:, -1].min()) > 0.5 and float(energy["key"][:, 0].max()) < 0.1
assert config.max_seq_len / (2 * math.pi / float(rope_frequencies(config.head_dim,
                                                                  config.rope_theta)[-1])) < 0.1

# %% [markdown]
# In every layer more than half of the queries' and keys' length sits in the slowest pair,
# which turns by less than a tenth of a turn over the whole context: in that pair $q \cdot k$
# barely depends on position, so it compares *what* tokens are, not *where*. The fastest pair
# (a turn every 6 tokens) carries under a tenth. stories260K uses RoPE's slowest pair as a
# nearly position-free channel, and the faster ones for position: a previous-token head needs
# only a little of a fast pair to tell "one back" from "two back".
#
# ## Two models on the same text
#
# The book's stored model (`book.stored_model()`, trained once by `book_config/
# make_stored_model.py` on the book's training extract) is about four times the size of
# stories260K and has its own tokenizer: 2,048 BPE pieces trained in chapter 1's way, against 512
# sentencepiece pieces. Loss per token cannot compare them, since their tokens are different
# units. **Bits per byte** can: the total negative log-likelihood of a text, in bits, divided
# by the number of bytes the text takes in UTF-8. Both models pay for exactly the same bytes.
#
# Two details make it exact:
#
# - each story is read as `[start] + encode(story)`, where the start token is the one the
#   model saw at story starts in training (BOS for stories260K, `<|endoftext|>` for the book's
#   model), and every token of the story is predicted once. The end-of-story token is not
#   predicted: it is not part of the text;
# - the divisor is the story's own bytes, not the bytes its tokens spell out. A sentencepiece
#   tokenizer puts a space in front of the text ("dummy prefix"), so stories260K's tokens spell
#   one byte more per story than the story has:

# %%
piece_bytes = sum(len(tokenizer.token_bytes(i)) for i in tokenizer.encode(story))
print(f"validation story 0: {len(story.encode('utf-8'))} bytes of text, its tokens spell "
      f"{piece_bytes}; it starts {story[:6]!r}, its first token spells "
      f"{tokenizer.token_bytes(tokenizer.encode(story)[0])!r}")

# %%
assert piece_bytes == len(story.encode("utf-8")) + 1

# %% [markdown]
# That space is free to predict, so it changes the total loss by almost nothing, but dividing
# by the tokens' bytes would credit stories260K with one byte per story it never had to
# predict. `interpret.score_texts` does the bookkeeping. A story longer than the context is read
# in windows that advance by half a context, so every prediction still sees at least half a
# context before it. We score the first 100 validation stories.

# %%
stored = book.stored_model()
book_model, book_tokenizer = stored.model, stored.tokenizer
SCORED_STORIES = 100
texts = validation[:SCORED_STORIES]
results = {
    "stories260K": interpret.score_texts(model, tokenizer, texts, start_id=BOS),
    "book model": interpret.score_texts(book_model, book_tokenizer, texts,
                                        start_id=book_tokenizer.eot_id),
}
counts = {"stories260K": model.num_parameters(), "book model": book_model.num_parameters()}
for name, result in results.items():
    print(f"{name:12s} {counts[name]:>9,} parameters  {result.num_tokens:>6,} tokens "
          f"({result.num_bytes / result.num_tokens:.2f} bytes/token)  "
          f"{result.bits_per_byte:.3f} bits/byte  ({result.num_split} stories split)")
print(f"the book model's own validation figure (whole extract): "
      f"{stored.meta['validation']['bits_per_byte']:.3f} bits/byte; it trained on "
      f"{stored.meta['tokens_seen']:,} tokens of the book's training extract")

# %%
small, large = results["stories260K"], results["book model"]
assert small.num_bytes == large.num_bytes  # the same text for both
assert small.num_tokens > large.num_tokens  # 512 pieces need more tokens than 2,048
assert counts["book model"] > 3 * counts["stories260K"]
assert small.bits_per_byte < large.bits_per_byte  # the smaller model wins
assert stored.meta["validation"]["bits_per_byte"] > large.bits_per_byte

# %% [markdown]
# On these 100 stories **stories260K wins**: 0.833 bits per byte against 0.913 for the book's
# model, with a quarter of the parameters (260,032 against 1,049,728). They are an easy block,
# though, and an unrepresentative one: chapter 7's ladder scores all 1,000 validation stories
# the same way and finds the two within 0.004 (1.028 for the book's model, 1.032 for
# stories260K). Size is not all that
# counts: stories260K was trained by Karpathy with llama2.c on the full TinyStories data,
# while the book's model saw 4,915,200 tokens of our 2,316-story training extract (2,400
# steps of 8 windows of 256 tokens, printed above from its `meta`). Keep in mind, too, that
# stories260K's training data may contain some of these validation stories.
#
# The book model's own validation figure, 1.056 bits per byte, is higher than its 0.913 here
# for two reasons. Most of the gap is the stories: these 100 are easier than the 1,000 (1.028
# on all of them, measured this way). The rest is the measurement: the 1.056 reads the 1,000
# stories as one stream of tokens cut into 256-token windows laid end to end (so each window
# starts without context), with the end-of-story tokens predicted too. Only figures measured
# the same way, on the same stories, compare.
#
# Side by side, greedy and then sampled (temperature 1, the same seed for both), each from its
# model's story-start token alone:

# %%
def story_from(model, tokenizer, start_id, temperature, seed=0, tokens=120):
    out = model.generate(torch.tensor([[start_id]]), tokens, temperature=temperature,
                         eos_id=start_id, generator=torch.Generator().manual_seed(seed))
    return tokenizer.decode([i for i in out[0, 1:].tolist() if i != start_id])


side_by_side = {}
for temperature in (0.0, 1.0):
    for name, (m, tok, start) in {"stories260K": (model, tokenizer, BOS),
                                  "book model": (book_model, book_tokenizer,
                                                 book_tokenizer.eot_id)}.items():
        side_by_side[name, temperature] = story_from(m, tok, start, temperature)
        print(f"--- {name}, {'greedy' if temperature == 0 else 'sampled'}:\n"
              f"{side_by_side[name, temperature]}\n")

# %%
assert all(len(text.split()) > 20 for text in side_by_side.values())

# %% [markdown]
# ## Explorers on the real model
#
# The explorers of chapters 4 and 8 work on any model of the library. They encode the text you
# type themselves, so we hand them the tokenizer wrapped in `interpret.WithStartToken`, which
# puts BOS first, as in training. In Jupyter with ipywidgets you can type a text and pick a
# layer and head; the static book shows the view they open with (the strongest previous-token
# head, and the top 20 next tokens).

# %%
bos_tokenizer = interpret.WithStartToken(tokenizer, BOS)
attention_explorer = AttentionExplorer(model, bos_tokenizer, text="Tom saw a dog. The dog was",
                                       layer=layer, head=head)
attention_explorer

# %%
sampling_explorer = SamplingExplorer(model, bos_tokenizer,
                                     prompt="Lily wanted to play with the", top_k=20)
sampling_explorer

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** Write the induction score of one head yourself: given its (T, T) causal
# attention map on a sequence `[BOS] + x + x` whose `length` random tokens `x` are repeated
# once (so $T = 1 + 2\,\text{length}$), return the mean weight that the queries of the second
# copy put on the position an induction head would look at. It is the number the third panel of
# the head-score figure shows for each head. The check compares your function with
# `interpret.induction_scores` on random maps.

# %%
def induction_score(weights: torch.Tensor, length: int) -> float:
    """Mean weight of the second copy's queries on where an induction head looks; weights (T, T)."""
    ...  # your code here


# %%
ch11.exercise_1(induction_score)

# %% [markdown]
# **Exercise 2.** Write the RoPE pair energy of a set of query (or key) vectors: given a tensor
# of shape (..., D), return the D/2 shares of their total squared norm that each RoPE pair
# carries, in this library's pairing, summed over all the vectors. It is what
# `interpret.rope_pair_energy` reports for each layer; the check compares on random vectors.

# %%
def pair_energy(vectors: torch.Tensor) -> torch.Tensor:
    """(D/2,) share of the squared norm of all vectors (..., D) in each RoPE pair; sums to 1."""
    ...  # your code here


# %%
ch11.exercise_2(pair_energy)

# %% [markdown]
# **Exercise 3.** The logit lens gives one row of logits per residual stream (embedding, then
# after each layer) at one position. Write a function that returns the index of the first
# stream from which the top token is the final stream's top token *and stays so* in every
# later stream. The solutions apply it to the three prompts above.

# %%
def settled_layer(stream_logits: torch.Tensor) -> int:
    ...  # your code here


# %%
ch11.exercise_3(settled_layer)

# %% [markdown]
# **Exercise 4 (experiment).** Single-head ablations showed each head costs little. Do heads
# matter more together? Zero the three heads whose single ablation raised the loss most, all at
# once, with `interpret.ablated_loss(model, windows, heads, targets)`; then the three that
# raised it least. Is the increase of the top three about the sum of their single increases, or
# more? And the bottom three? Hand back the single increases you ranked the heads by (the
# (layers, heads) tensor `increase` above), the three losses, and for each triple its increase
# together divided by the sum of its three single increases (1 means they add up). The check
# measures the baseline, the triples and the extreme single heads again.

# %%
single_increases = ...  # your answer: the (layers, heads) tensor of single-head increases
ablation_losses = ...  # your answer: {"baseline": ..., "top3": ..., "bottom3": ...} (nats/token)
together_over_sum = ...  # your answer: (top3 ratio, bottom3 ratio)

# %%
ch11.exercise_4(single_increases, ablation_losses, together_over_sum)

# %% [markdown]
# ## What we built, and where it lives in the library
#
# | measurement | what it showed for stories260K | library |
# |---|---|---|
# | reading a llama2.c model | a 260K-parameter Llama in our `Transformer` | `llama2c.from_llama2c`, `tokenizer.load_tokenizer("tok512")` |
# | attention maps | 40 heads, some with a sharp line just below the diagonal | `Transformer.attention_maps`, `viz.plot_attention` |
# | previous-token, first-token and induction scores | previous-token heads; no sink, no induction heads | `interpret.previous_token_scores`, `first_token_scores`, `induction_scores`, `repeated_random_tokens`, `copy_losses`, `viz.plot_head_scores` |
# | head ablation | small, spread costs; the last layer matters most | `interpret.head_ablation_losses`, `ablated_loss`, `heads_zeroed` |
# | logit lens | the prediction forms over the layers | `interpret.logit_lens`, `residual_streams`, `viz.plot_logit_lens` |
# | RoPE pair energy | most of q and k in the slowest pair | `interpret.rope_pair_energy`, `viz.plot_rope_pair_energy` |
# | bits per byte across tokenizers | on the same 100 stories stories260K beats the 4x larger book model; on all 1,000 (chapter 7) the two are within 0.004 | `interpret.score_texts` |
# | explorers on a BOS model | the same widgets as chapters 4 and 8, with BOS put first | `interpret.WithStartToken`, `widgets.AttentionExplorer`, `widgets.SamplingExplorer` |
#
# The solutions to the exercises are in `notebooks/solutions/11_inside_a_trained_model_solutions`.
