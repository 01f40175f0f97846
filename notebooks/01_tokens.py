# %% [markdown]
# # 1. Tokens
#
# A language model never sees text. It sees a list of integers, one per *token*, and predicts
# the next integer. This chapter builds the translation between the two: we look at what a
# string is made of (characters, UTF-8 bytes), build a byte-pair-encoding (BPE) tokenizer on a
# toy corpus, check it against `transformer_lib.data.tokenizer`, and then use the library to
# train the 2,048-token vocabulary the book's models read TinyStories with.
#
# What you will build:
#
# - a GPT-style pre-tokeniser (one regular expression),
# - BPE training (count pairs, merge the most frequent, repeat), which you write yourself in
#   exercise 1 and which is checked merge for merge against the library's trainer,
# - encoding and decoding, checked id for id against the library's tokenizer,
# - a measurement of how many bytes one token carries, and how that depends on the
#   vocabulary size.

# %%
import base64
import tempfile
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import datasets
import regex  # like `re`, but it knows Unicode classes such as \p{L} ("any letter")

from transformer_lib import book
from transformer_lib.book import viz
from transformer_lib.book.exercises import ch01
from transformer_lib.book.widgets import TokenizerExplorer
from transformer_lib.data import book_stories
from transformer_lib.data.bpe import merges_from_ranks
from transformer_lib.data.tokenizer import (
    EOT_TEXT,
    GPT2_PATTERN,
    Tokenizer,
    load_tokenizer,
    train_tokenizer,
)

# The first load of a split writes a cache and draws progress bars; silence them so that the
# stored outputs do not depend on whether the cache was warm.
datasets.disable_progress_bars()

# %% [markdown]
# ## Text is characters, characters are bytes
#
# A Python string is a sequence of Unicode *code points*: numbers between 0 and 1,114,111. We
# could give every code point its own id, but that vocabulary would be huge, most of it would
# never appear in training, and any character missing from the training data would have no id
# at all.
#
# Underneath, text is stored as bytes. UTF-8 spells each code point with one to four bytes:
# ASCII letters take one, accented Latin letters two, most Chinese characters three, emoji four.
# Let us take a string apart.

# %%
sample = "naïve café 🙂"
for char in dict.fromkeys(sample):  # each distinct character once, in order of appearance
    utf8 = char.encode("utf-8")
    print(f"{char!r:8} code point U+{ord(char):04X}  UTF-8 bytes {list(utf8)}")

# %% [markdown]
# The string has 12 characters but more bytes: `ï` and `é` take two each, the emoji four.
# (`str.encode()` uses UTF-8 unless told otherwise, so from here on we leave the argument out.)

# %%
sample_bytes = sample.encode()
print(f"{len(sample)} characters, {len(sample_bytes)} bytes")

# %%
assert len(sample) == 12
assert len(sample_bytes) == 9 + 2 + 2 + 4  # nine one-byte characters, ï, é, 🙂
assert len("🙂".encode()) == 4 and len("é".encode()) == 2

# %% [markdown]
# Bytes solve the "unknown character" problem: with 256 byte ids, *every* string has an
# encoding. The price is length. A model's cost grows with the number of positions it reads
# (attention even grows with its square), and a byte-level model spends one position on every
# byte, most of which carry little information on their own (`t`, `h`, `e`...).
#
# *Subword* tokenizers sit in between: frequent byte sequences such as ` the` or `ing` get one
# id each, rare text falls back to shorter pieces, and in the worst case to single bytes. So the
# vocabulary stays a fixed size, nothing is ever unknown, and common text becomes several times
# shorter. Byte-pair encoding (Sennrich et al., 2016; used byte-level since GPT-2) is the
# standard way to choose those subwords.

# %% [markdown]
# ## Byte-pair encoding from scratch
#
# We learn the merges on a toy corpus: a few sentences in the style of TinyStories, the data set
# the book trains on.

# %%
toy_corpus = (
    "Once upon a time there was a little cat. The little cat liked to sit in the sun.\n"
    "One day the cat saw a little bird. The bird sang a song, and the cat listened.\n"
    '"Hello, bird!" said the cat. "Hello, cat!" said the bird. They sat in the sun together.\n'
    "The sun was warm and the song was happy. The cat and the bird were friends."
)
print(f"{len(toy_corpus)} characters, {len(toy_corpus.encode())} bytes")

# %% [markdown]
# ### Step 1: pre-tokenisation
#
# BPE could merge across any boundary, producing tokens such as `t. T` that mix punctuation,
# a space and the next word. GPT-2 first cuts the text into chunks with a regular expression
# and only merges *inside* a chunk. Its pattern, alternative by alternative:
#
# - `'s|'t|'re|'ve|'m|'ll|'d`: common English contractions;
# - ` ?\p{L}+`: a run of letters, with at most one space in front (so ` cat` is one chunk);
# - ` ?\p{N}+`: a run of digits, likewise;
# - ` ?[^\s\p{L}\p{N}]+`: a run of punctuation and symbols;
# - `\s+(?!\S)|\s+`: whitespace, leaving the last space of a run to the word that follows.

# %%
SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

print(regex.findall(SPLIT_PATTERN, 'The cat\'s "Hello!" at 10:30,   then  sleep.\n'))

# %% [markdown]
# The library stores the same pattern as tiktoken spells it (`GPT2_PATTERN`, with possessive
# quantifiers such as `++`, which match the same text but never backtrack, so the regex engine
# is faster). Both split our corpus identically:

# %%
assert regex.findall(SPLIT_PATTERN, toy_corpus) == regex.findall(GPT2_PATTERN, toy_corpus)

# %% [markdown]
# ### Step 2: count the chunks and their byte pairs
#
# Training only needs each distinct chunk once, with its count. A chunk is held as a tuple of
# ids, which start out as its UTF-8 byte values 0..255.

# %%
def chunk_counts(text: str) -> Counter:
    """Distinct pre-tokenised chunks, each as a tuple of byte ids, with how often it occurs."""
    return Counter(tuple(chunk.encode()) for chunk in regex.findall(SPLIT_PATTERN, text))


def pair_counts(chunks: Counter) -> Counter:
    """How often each pair of neighbouring ids occurs, over all chunks (weighted by count)."""
    counts = Counter()
    for ids, count in chunks.items():
        for pair in pairwise(ids):
            counts[pair] += count
    return counts


toy_chunks = chunk_counts(toy_corpus)
toy_pairs = pair_counts(toy_chunks)
for (left, right), count in toy_pairs.most_common(5):
    print(f"{bytes([left, right])!r:8} ids ({left}, {right}) occurs {count} times")

# %% [markdown]
# ### Step 3: merge
#
# The most frequent pair becomes a new token with the next free id (256, then 257, ...), and
# every occurrence of the pair is replaced by it. `merge` does the replacement left to right.

# %%
def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` (scanning left to right) by `new_id`."""
    merged, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


print(merge([104, 101, 32, 104, 101, 104], (104, 101), 256))

# %% [markdown]
# ### Step 4: repeat
#
# Training is a loop over those steps: count the pairs in all the chunks, take the most
# frequent, record it as a merge with the next free id, merge it in every chunk, and count
# again. The merges, in the order they were learned, *are* the tokenizer. When several pairs
# share the highest count, a rule must choose; the library's trainer (Hugging Face
# `tokenizers`) takes the **smallest pair**: the lowest left id, and among those the lowest
# right id.
#
# **Exercise 1.** Write that loop. Each exercise in this book has a cell for your answer, which
# starts out holding a placeholder (`...`), and a check cell that prints `not attempted yet`,
# `correct`, or `not yet` with a hint; the worked answers are in
# `notebooks/solutions/01_tokens_solutions.ipynb`. Here the check hands your function the
# chunks of a few small corpora, numbered the way the library numbers bytes (see below), and
# compares your merges with the ones the library's trainer learns, merge for merge. Try yours
# on `toy_chunks` first.

# %%
def train_bpe(chunks: Counter, num_merges: int) -> dict[tuple[int, int], int]:
    """Learn up to num_merges BPE merges from chunks ({tuple of ids: count}, as chunk_counts
    returns). Returns {(left, right): new_id} with new ids 256, 257, ... in the order they
    were learned; stops early when no pair is left."""
    ...  # your code here


# %%
ch01.exercise_1(train_bpe)

# %% [markdown]
# ## The library's trainer
#
# The library trains with Hugging Face `tokenizers`: the same loop in Rust, which updates the
# pair counts after each merge instead of recounting everything, so thousands of merges on
# megabytes of text take seconds, not hours. We ask it for 40 merges on the toy corpus: a
# vocabulary of 256 bytes, 40 merged tokens and one special token that we meet below.

# %%
toy_tokenizer = train_tokenizer([toy_corpus], 256 + 40 + 1)
print(toy_tokenizer)

# %% [markdown]
# It stores a *rank table*, each token's bytes mapped to its id. The single bytes do not keep
# their byte values as ids: the trainer numbers them in its own order (printable characters
# first), and any numbering works as long as everything that reads ids shares it. The merged
# tokens follow from 256 on, in the order they were learned.

# %%
toy_vocab = {token_id: token for token, token_id in toy_tokenizer.ranks.items()}  # id -> bytes
byte_ids = {byte: toy_tokenizer.ranks[bytes([byte])] for byte in range(256)}  # byte -> its id
print(f"'a' is byte {ord('a')} and id {byte_ids[ord('a')]}; "
      f"' ' is byte {ord(' ')} and id {byte_ids[ord(' ')]}")
print([toy_vocab[token_id].decode() for token_id in range(256, 256 + 12)])

# %% [markdown]
# The first merges join the most common letter pairs (`he`, ` t`), then whole frequent words
# appear (` the`, ` cat`). Every id above 255 stands for a distinct byte string:

# %%
assert sorted(byte_ids.values()) == list(range(256))
assert sorted(toy_vocab) == list(range(256 + 40))
assert len(set(toy_vocab.values())) == len(toy_vocab)

# %% [markdown]
# The rank table does not list the merges, but they can be read back from it: a token of rank
# $r$ was made by one merge of two tokens ranked below $r$, and those two are what is left when
# the token's own bytes are merged using only the tokens ranked below it.
# `transformer_lib.data.bpe.merges_from_ranks` does that, giving the merges in the same form as
# exercise 1 (the check compares your merges with exactly these, on its own corpora):

# %%
toy_merges = merges_from_ranks(toy_tokenizer.ranks)
first = list(toy_merges.items())[:3]
print(first, [toy_vocab[left] + toy_vocab[right] for (left, right), _ in first])

# %%
assert len(toy_merges) == 40 and list(toy_merges.values()) == list(range(256, 296))
assert all(toy_vocab[left] + toy_vocab[right] == toy_vocab[new_id]
           for (left, right), new_id in toy_merges.items())

# %% [markdown]
# ### Step 5: encode and decode
#
# To encode new text we split it into chunks with the same regex, start each chunk from its
# bytes' ids, and replay the merges *in the order they were learned*: among the pairs present,
# merge the one with the lowest merge id, until no present pair has a merge. Decoding
# concatenates each id's bytes and reads them as UTF-8.

# %%
def encode_chunk(ids: list[int], merges: dict) -> list[int]:
    """Apply merges to one chunk's ids, earliest-learned first, until none applies."""
    while len(ids) >= 2:
        pair = min(pairwise(ids), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


def bpe_encode(text: str, merges: dict) -> list[int]:
    """Pre-tokenise, then encode every chunk on its own, from its bytes' ids."""
    chunks = regex.findall(SPLIT_PATTERN, text)
    return [i for chunk in chunks
            for i in encode_chunk([byte_ids[byte] for byte in chunk.encode()], merges)]


def bpe_decode(ids: list[int], vocab: dict) -> str:
    """Join the tokens' bytes; byte sequences that are not valid UTF-8 become U+FFFD."""
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


toy_ids = bpe_encode(toy_corpus, toy_merges)
print(f"toy corpus: {len(toy_corpus.encode())} bytes -> {len(toy_ids)} tokens "
      f"({len(toy_corpus.encode()) / len(toy_ids):.2f} bytes per token)")
print([bpe_decode([i], toy_vocab) for i in bpe_encode("The little bird sang.", toy_merges)])

# %% [markdown]
# Text the tokenizer has never seen, including characters absent from the corpus, still
# encodes: it falls back to shorter pieces and, at worst, to raw bytes.

# %%
unseen_text = "A big dog barked at the little bird in the park. Naïve café 🙂, 1234!!"
unseen_ids = bpe_encode(unseen_text, toy_merges)
print(f"{len(unseen_text.encode())} bytes -> {len(unseen_ids)} tokens")
print(f"the emoji alone: {bpe_encode('🙂', toy_merges)}")  # no merge applies: its four bytes

# %%
assert bpe_decode(toy_ids, toy_vocab) == toy_corpus
assert bpe_decode(unseen_ids, toy_vocab) == unseen_text
assert len(toy_ids) < len(toy_corpus.encode()) / 2  # merges more than halve the corpus
assert bpe_encode("🙂", toy_merges) == [byte_ids[byte] for byte in "🙂".encode()]

# %% [markdown]
# ## Checking against the library
#
# `transformer_lib.data.tokenizer.Tokenizer` encodes with tiktoken, OpenAI's fast BPE in Rust.
# It works from the rank table alone: among neighbouring pieces, it merges the pair whose joined
# bytes have the lowest rank. Since ids grow in merge order, that is the same as our "lowest
# merge id first". The library must give exactly our ids, on the training corpus and on unseen
# text, and decode them back to the original strings.

# %%
for text in (toy_corpus, unseen_text, "catcatcat thethe sunsun 🙂🙂"):
    assert toy_tokenizer.encode(text) == bpe_encode(text, toy_merges), text
    assert toy_tokenizer.decode(toy_tokenizer.encode(text)) == text
print("the library's tokenizer gives the same ids as our from-scratch encoder")

# %% [markdown]
# The library adds one thing we did not build: a *special token*, `<|endoftext|>`, whose id
# follows the last rank (here 296). It marks the boundary between two stories when they are
# concatenated for training; we return to it below.

# %%
assert toy_tokenizer.eot_id == len(toy_tokenizer.ranks) == 296
assert toy_tokenizer.vocab_size == 297

# %% [markdown]
# ### Ranks files
#
# A rank table can be written as a *ranks file*: one line per token, its bytes in base64 and its
# rank. This is the `.tiktoken` format in which tiktoken ships GPT-2's ranks (`r50k_base.tiktoken`,
# the same 50,257 tokens as GPT-2's own `encoder.json`), and `load_tokenizer` reads such a file
# directly (with GPT-2's split pattern and `<|endoftext|>` after the last rank). Writing the toy
# ranks this way and loading them back gives the same tokenizer.

# %%
with tempfile.TemporaryDirectory() as folder:
    ranks_file = Path(folder) / "toy.tiktoken"
    lines = [f"{base64.b64encode(toy_vocab[rank]).decode('ascii')} {rank}"
             for rank in sorted(toy_vocab)]
    ranks_file.write_text("\n".join(lines) + "\n", encoding="ascii")
    print(lines[256:259])  # the first three merges: "he", " t", " s"
    reloaded = load_tokenizer(ranks_file)

assert reloaded.encode(unseen_text) == toy_tokenizer.encode(unseen_text)
assert reloaded.eot_id == toy_tokenizer.eot_id

# %% [markdown]
# ## A tokenizer for TinyStories
#
# Every chapter reads the same extract of TinyStories: `book_stories(split)` returns its first
# 2,316 training or 1,000 validation stories as a list of strings. They come from a local copy
# when the environment variable `TINYSTORIES_PATH` names one (as in the book's test runs);
# otherwise the library streams just these stories once from the Hugging Face hub into your
# cache and reads them from there afterwards.

# %%
train_stories = book_stories("train")
validation_stories = book_stories("validation")
train_bytes = sum(len(story.encode()) for story in train_stories)
print(f"train: {len(train_stories)} stories, {train_bytes / 1e6:.1f} MB; "
      f"validation: {len(validation_stories)} stories")
print(train_stories[0][:200], "...")

# %% [markdown]
# We train the book's byte-level BPE, `book.BOOK_VOCAB_SIZE` = 2,048 ids: 256 bytes, 1,791
# merges and `<|endoftext|>`. (Chapter 7 trains the same tokenizer on the same stories, and it
# is the one the book's stored model reads, which the check below the training confirms.)

# %%
start = time.perf_counter()
story_tokenizer = train_tokenizer(train_stories, book.BOOK_VOCAB_SIZE)
print(f"trained in {time.perf_counter() - start:.2f} s: {story_tokenizer}")

# %%
assert story_tokenizer.vocab_size == 2048 and story_tokenizer.eot_id == 2047
assert len(story_tokenizer.ranks) == 256 + 1791
# training is deterministic: the same stories give exactly the stored model's vocabulary
assert story_tokenizer.content_hash == book.stored_model().tokenizer.content_hash

# %% [markdown]
# The longest tokens are whole words (with their leading space) that the stories repeat:

# %%
longest = sorted(story_tokenizer.ranks, key=lambda token: (-len(token), token))[:8]
print([token.decode("utf-8") for token in longest])

# %% [markdown]
# ### Bytes per token
#
# How much text does one token carry? We measure it on the *validation* split, which the
# tokenizer never saw, as total UTF-8 bytes over total tokens. (Chapter 7 reports the model's
# loss in bits per byte for the same reason: a per-byte figure does not depend on the
# tokenizer, a per-token one does.)

# %%
def bytes_per_token(tokenizer: Tokenizer, texts) -> float:
    """Total UTF-8 bytes of texts divided by the number of tokens they encode to."""
    texts = list(texts)
    n_bytes = sum(len(text.encode()) for text in texts)
    n_tokens = sum(len(ids) for ids in tokenizer.encode_batch(texts))
    return n_bytes / n_tokens


validation_bpt = bytes_per_token(story_tokenizer, validation_stories)
print(f"validation: {validation_bpt:.2f} bytes per token")

# %%
assert 3.5 < validation_bpt < 4.5  # three to four characters of English per token

# %% [markdown]
# ### `<|endoftext|>` is not typed, it is added
#
# Text that *contains* the characters `<|endoftext|>` is encoded as ordinary text, a handful of
# byte-pair tokens, never as the special id. Otherwise anyone who can put text in front of the
# model could forge a document boundary. The id is added on request (`add_eot=True`), or by the
# token cache, which places it between stories.

# %%
typed = story_tokenizer.encode(f"The end.{EOT_TEXT}")
added = story_tokenizer.encode("The end.", add_eot=True)
print(f"typed: {typed}")
print(f"added: {added} (eot_id = {story_tokenizer.eot_id})")

# %%
assert story_tokenizer.eot_id not in typed
assert added[-1] == story_tokenizer.eot_id and added[:-1] == story_tokenizer.encode("The end.")

# %% [markdown]
# ### Seeing the token boundaries
#
# `viz.plot_tokens` draws a text as coloured spans, one per token, with the id underneath. A
# space inside a token is drawn as `␣`, so you can see that most words carry their leading
# space. Frequent words are one token each; rarer words split into pieces, and the emoji,
# unseen in training, into its raw bytes (a span that groups several ids; the plot's font has
# no emoji, so it writes the code point, `U+1F642`).

# %%
viz.plot_tokens("Once upon a time, Lily found a shiny red ball in the garden. "
                "She was so happy! Unbelievably, it bounced to the moon 🙂.", story_tokenizer)

# %% [markdown]
# As in the toy tokenizer, the emoji's four ids are not its byte values 240, 159, 153, 130:
# the library keeps the ids of Hugging Face's trainer, which numbers the 256 single bytes in
# its own order. `token_bytes` shows what each id stands for:

# %%
emoji_ids = story_tokenizer.encode("🙂")
print(emoji_ids, [story_tokenizer.token_bytes(i) for i in emoji_ids])

# %%
assert [story_tokenizer.token_bytes(i) for i in emoji_ids] == [bytes([b]) for b in "🙂".encode()]

# %% [markdown]
# So no text is ever unknown to a byte-level tokenizer, even in scripts that never appear in
# TinyStories: it falls back to single bytes, and decodes them back exactly.

# %%
foreign = "Ελληνικά, 日本語, עברית, and 🦜"
foreign_ids = story_tokenizer.encode(foreign)
print(f"{len(foreign.encode())} bytes -> {len(foreign_ids)} tokens; decodes back exactly: "
      f"{story_tokenizer.decode(foreign_ids) == foreign}")

# %%
assert story_tokenizer.decode(foreign_ids) == foreign

# %% [markdown]
# In Jupyter, the explorer below lets you type your own text and see it tokenised (on a static
# page, it shows the default text).

# %%
explorer = TokenizerExplorer(story_tokenizer)
explorer

# %% [markdown]
# ### How big should the vocabulary be?
#
# More merges mean longer tokens, so fewer positions per story, but also a larger embedding
# table and rarer tokens, each seen less often in training. We train tokenizers of several
# sizes on the first 500 training stories and measure bytes per token both on those stories
# and on the validation split.

# %%
subset = train_stories[:500]
vocab_sizes = [260, 512, 1024, 2048, 4096]
subset_bpt, validation_bpt_by_size = [], []
for size in vocab_sizes:
    tokenizer = train_tokenizer(subset, size)
    subset_bpt.append(bytes_per_token(tokenizer, subset))
    validation_bpt_by_size.append(bytes_per_token(tokenizer, validation_stories))
print("vocab size   bytes/token (500 training stories)   bytes/token (validation)")
for size, on_subset, on_validation in zip(vocab_sizes, subset_bpt, validation_bpt_by_size,
                                              strict=True):
    print(f"{size:>10}   {on_subset:>34.2f}   {on_validation:>24.2f}")

# %%
viz.plot_lines(vocab_sizes, {"500 training stories": subset_bpt,
                             "validation split": validation_bpt_by_size},
               title="Longer tokens with a larger vocabulary", xlabel="vocabulary size (ids)",
               ylabel="bytes per token", logx=True, markers=True)

# %% [markdown]
# Bytes per token climbs quickly for the first few hundred merges, then more slowly: each
# doubling of the vocabulary buys less. For small vocabularies the two curves coincide: the
# first merges (` the`, `ed`, ` and`) are common in any English text. The late merges fit the
# tokenizer's own training text: words and names frequent in those 500 stories but rare
# elsewhere, so the curves part. That is why tokenizers are trained on a lot of text, and why
# we measure on held-out data.

# %%
assert all(a < b for a, b in pairwise(validation_bpt_by_size))
gaps = [s - v for s, v in zip(subset_bpt, validation_bpt_by_size, strict=True)]
assert abs(gaps[0]) < 0.05 and gaps[-1] > 0.1  # no gap at 260 ids, a clear one at 4,096

# %% [markdown]
# ## A vocabulary four times larger
#
# Why stop at 2,048 ids? We train a tokenizer with 8,192 ids on the same 2,316 stories and
# compare the two on the validation split. Besides bytes per token, the table counts what each
# vocabulary costs the model: its embedding table at the book's width, `d_model` = 128.

# %%
large_tokenizer = train_tokenizer(train_stories, 8192)
d_model = book.BOOK_MODEL["d_model"]
print("vocabulary   bytes/token (validation)   embedding parameters at d_model 128")
comparison = {}
for tokenizer in (story_tokenizer, large_tokenizer):
    comparison[tokenizer.vocab_size] = bytes_per_token(tokenizer, validation_stories)
    print(f"{tokenizer.vocab_size:>10}   {comparison[tokenizer.vocab_size]:>24.2f}   "
          f"{tokenizer.vocab_size * d_model:>35,}")

# %% [markdown]
# Four times the ids buy 13% more text per token on unseen stories. The price is four times
# the embedding table: at 8,192 ids the table alone would hold 1,048,576 parameters, almost
# exactly as many as the whole of the book's model (1,049,728 with its 2,048-id table, chapter
# 0). For a model this small the
# parameters are better spent on its blocks, and 2,048 ids already carry more than three and
# a half bytes each. Chapter 12 measures the choice by training the book's model for the same
# time with each vocabulary: 1,024 ids give a clearly worse model, 3,072 and 4,096 no better one.

# %%
assert 0.10 < comparison[8192] / comparison[2048] - 1 < 0.16
assert 8192 * d_model == 1_048_576

# %% [markdown]
# GPT-2's tokenizer takes the same trade much further: 50,257 ids, trained on web text of every
# kind, so its merges cover words that TinyStories never uses. The library loads it through
# tiktoken, which downloads the vocabulary once and caches it; offline, pass a local
# `r50k_base.tiktoken` ranks file (the format we wrote above) instead of `"gpt2"`. The book is
# built offline, so this code is shown, not run; with network access, try it:
#
# ```python
# gpt2 = load_tokenizer("gpt2")
# print(bytes_per_token(gpt2, validation_stories), gpt2.vocab_size * d_model)
# ```

# %% [markdown]
# ## Exercises
#
# Exercise 1 asked for the training loop, above; the others follow. The worked answers are in
# `notebooks/solutions/01_tokens_solutions.ipynb`.
#
# **Exercise 2.** How many bytes does the word `naïve` take in UTF-8? Work it out from the
# character table at the top of the chapter, without calling `.encode`.

# %%
naive_bytes = ...  # your answer: a whole number

# %%
ch01.exercise_2(naive_bytes)

# %% [markdown]
# **Exercise 3.** Do one BPE merge by hand on the text `abababcab` (a single chunk; the byte
# ids of `a`, `b`, `c` are 97, 98, 99). Which pair of ids is the most frequent, and what is the
# list of ids after merging it into the new id 256?

# %%
most_frequent_pair = ...  # your answer: a pair of ids, (left, right)
ids_after_merge = ...  # your answer: a list of ids

# %%
ch01.exercise_3(most_frequent_pair, ids_after_merge)

# %% [markdown]
# **Exercise 4.** Write `encode_stories(stories, tokenizer)`, which turns a list of stories
# into the one long list of ids that training reads: each story's ids followed by the
# end-of-text id, as the token cache does. The check tries it on stories of its own, with
# `story_tokenizer`.

# %%
def encode_stories(stories: list[str], tokenizer: Tokenizer) -> list[int]:
    ...  # your code here

# %%
ch01.exercise_4(encode_stories, story_tokenizer)

# %% [markdown]
# **Exercise 5.** The story tokenizer learned its merges from children's stories. Measure its
# bytes per token on the text below, a line of Python about a dog, and compare with what it
# reaches on the validation stories (`validation_bpt` above). Then find which words of the
# line it encodes as a single token: cut the line into chunks with the pre-tokeniser's regex
# (`GPT2_PATTERN`), keep the runs of letters (each with the space in front of it, if it has
# one, as the regex cuts it), and list those that encode to exactly one id, each once.

# %%
unfamiliar_text = "def play(dog, ball): return dog.run(ball) if ball.is_red else dog.sleep()\n"
unfamiliar_bytes_per_token = ...  # your answer: a number
single_token_words = ...  # your answer: a list of strings, such as [" cat", "sun"]

# %%
ch01.exercise_5(unfamiliar_bytes_per_token, single_token_words, story_tokenizer,
                unfamiliar_text)

# %% [markdown]
# ## What we built, and where it lives in the library
#
# | from scratch in this chapter | in `transformer_lib` |
# |---|---|
# | `SPLIT_PATTERN` (GPT-2's pre-tokenisation regex) | `tokenizer.GPT2_PATTERN` (tiktoken's spelling) |
# | `train_bpe` (exercise 1): count pairs, merge, repeat | `tokenizer.train_tokenizer(texts, vocab_size)` (Hugging Face `tokenizers`) |
# | the merges, in the order learned | `Tokenizer.ranks` (bytes -> id), read back by `bpe.merges_from_ranks`; ranks files via `load_tokenizer(path)` |
# | `bpe_encode` / `bpe_decode` | `Tokenizer.encode` / `decode` / `encode_batch` (tiktoken) |
# | | `<|endoftext|>` as `Tokenizer.eot_id`, added with `add_eot=True` |
# | | `Tokenizer.save(path)` and `load_tokenizer(path)`; from a shell, `tlib-tokenizer train --vocab-size 2048 --out bpe2048.json` |
#
# The model never sees any of this: it receives ids between 0 and `vocab_size - 1`. The next
# chapter turns each id into a vector.
