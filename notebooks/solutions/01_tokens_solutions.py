# %% [markdown]
# # Solutions to chapter 1: Tokens
#
# The answers to the exercises of chapter 1, each followed by the same check call as in the
# chapter, which now prints `correct`. Exercises 4 and 5 need the chapter's story tokenizer,
# so we train it again here exactly as the chapter does (2,048 ids on the book's 2,316
# training stories, about a second).

# %%
from collections import Counter
from itertools import pairwise

import regex

from transformer_lib import book
from transformer_lib.book.exercises import ch01
from transformer_lib.data import book_stories
from transformer_lib.data.bpe import merges_from_ranks
from transformer_lib.data.tokenizer import EOT_TEXT, GPT2_PATTERN, Tokenizer, train_tokenizer

story_tokenizer = train_tokenizer(book_stories("train"), book.BOOK_VOCAB_SIZE)

# %% [markdown]
# **Exercise 1.** The loop counts the pairs in every chunk, weighted by how often the chunk
# occurs; takes the highest count, and on a tie the smallest pair (the key `(count, -left,
# -right)` makes `max` do both); merges it everywhere; and repeats with the next id. It stops
# when every chunk has become a single token. `merge` is the chapter's.

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


def train_bpe(chunks: Counter, num_merges: int) -> dict[tuple[int, int], int]:
    """Learn up to num_merges BPE merges from chunks ({tuple of ids: count}, as chunk_counts
    returns). Returns {(left, right): new_id} with new ids 256, 257, ... in the order they
    were learned; stops early when no pair is left."""
    merges = {}
    for new_id in range(256, 256 + num_merges):
        counts = Counter()
        for ids, count in chunks.items():
            for pair in pairwise(ids):
                counts[pair] += count
        if not counts:  # every chunk is one token: nothing left to merge
            break
        pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        merges[pair] = new_id
        chunks = Counter({tuple(merge(list(ids), pair, new_id)): n for ids, n in chunks.items()})
    return merges


# %%
ch01.exercise_1(train_bpe)

# %% [markdown]
# On the chapter's toy corpus, with the bytes numbered as the library numbers them, it learns
# exactly the library's 40 merges:

# %%
toy_corpus = (
    "Once upon a time there was a little cat. The little cat liked to sit in the sun.\n"
    "One day the cat saw a little bird. The bird sang a song, and the cat listened.\n"
    '"Hello, bird!" said the cat. "Hello, cat!" said the bird. They sat in the sun together.\n'
    "The sun was warm and the song was happy. The cat and the bird were friends."
)
toy_tokenizer = train_tokenizer([toy_corpus], 256 + 40 + 1)
byte_ids = {byte: toy_tokenizer.ranks[bytes([byte])] for byte in range(256)}
toy_chunks = Counter(tuple(byte_ids[byte] for byte in chunk.encode())
                     for chunk in regex.findall(GPT2_PATTERN, toy_corpus))
same = train_bpe(toy_chunks, 40) == merges_from_ranks(toy_tokenizer.ranks)
print(f"our 40 merges equal the library's: {same}")

# %%
assert same

# %% [markdown]
# **Exercise 2.** From the chapter's table: `n`, `a`, `v` and `e` are ASCII, one byte each,
# and `ï` (U+00EF) takes two.

# %%
naive_bytes = 4 * 1 + 2

# %%
ch01.exercise_2(naive_bytes)

# %% [markdown]
# **Exercise 3.** The nine ids 97 98 97 98 97 98 99 97 98 have eight neighbouring pairs:
# (97, 98) four times, (98, 97) twice, (98, 99) and (99, 97) once each. Replacing every
# (97, 98) from the left leaves the `c` alone between them.

# %%
text_ids = list(b"abababcab")
print(Counter(pairwise(text_ids)).most_common())
most_frequent_pair = (97, 98)
ids_after_merge = merge(text_ids, most_frequent_pair, 256)
print(ids_after_merge)

# %%
ch01.exercise_3(most_frequent_pair, ids_after_merge)

# %% [markdown]
# **Exercise 4.** Encode each story on its own and append the end-of-text id, which
# `add_eot=True` does. Joining the stories with the *text* `<|endoftext|>` would not work: the
# tokenizer encodes typed text as ordinary tokens, never as the special id (the chapter's
# "not typed, it is added" section).

# %%
def encode_stories(stories: list[str], tokenizer: Tokenizer) -> list[int]:
    return [i for story in stories for i in tokenizer.encode(story, add_eot=True)]


ids = encode_stories(["The end.", f"A story that types {EOT_TEXT}."], story_tokenizer)
print(f"{ids.count(story_tokenizer.eot_id)} end-of-text ids, the last at position "
      f"{ids.index(story_tokenizer.eot_id, ids.index(story_tokenizer.eot_id) + 1)} of {len(ids)}")

# %%
ch01.exercise_4(encode_stories, story_tokenizer)

# %% [markdown]
# **Exercise 5.** Bytes over tokens, as in the chapter's `bytes_per_token`; then each run of
# letters, as the regex cuts it, encoded on its own.

# %%
unfamiliar_text = "def play(dog, ball): return dog.run(ball) if ball.is_red else dog.sleep()\n"
unfamiliar_bytes_per_token = len(unfamiliar_text.encode()) / len(story_tokenizer.encode(
    unfamiliar_text))
validation_bpt = (sum(len(story.encode()) for story in book_stories("validation"))
                  / sum(map(len, story_tokenizer.encode_batch(book_stories("validation")))))
print(f"Python line: {unfamiliar_bytes_per_token:.2f} bytes per token; "
      f"validation stories: {validation_bpt:.2f}")

words = [chunk for chunk in regex.findall(GPT2_PATTERN, unfamiliar_text) if chunk.strip().isalpha()]
pieces = {word: [story_tokenizer.decode([i]) for i in story_tokenizer.encode(word)]
          for word in words}
single_token_words = [word for word, parts in pieces.items() if len(parts) == 1]
print(pieces)
print(single_token_words)

# %%
ch01.exercise_5(unfamiliar_bytes_per_token, single_token_words, story_tokenizer,
                unfamiliar_text)
assert unfamiliar_bytes_per_token < 0.6 * validation_bpt
assert " dog" in single_token_words and "dog" not in single_token_words
assert " return" not in single_token_words

# %% [markdown]
# The line packs little more than half as many bytes into a token as the stories do. The
# story words with a space in front, ` play`, ` ball`, ` dog`, ` if`, ` else`, are single
# tokens, and so are the short `is` and `red`. The same words without a space, `dog` after a
# bracket, `ball` after a full stop, fall apart, because in the stories these words almost
# always follow a space and the merges learned that spelling. The code words fall apart too:
# ` return` into ` retur` + `n`, `def` into `de` + `f`, `sleep` into `s` + `leep`. A tokenizer
# compresses the kind of text it was trained on, spelled the way it was spelled there.
