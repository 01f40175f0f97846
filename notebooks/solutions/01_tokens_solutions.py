# %% [markdown]
# # Solutions to chapter 1: Tokens
#
# The answers to the exercises of chapter 1, each followed by the same check call as in the
# chapter, which now prints `correct`. Exercises 4 and 5 need the chapter's story tokenizer,
# so we train it again here exactly as the chapter does (2,048 ids on the book's 2,316
# training stories, about two seconds).

# %%
from collections import Counter
from itertools import pairwise

from transformer_lib import book
from transformer_lib.book.exercises import ch01
from transformer_lib.data import book_stories
from transformer_lib.data.tokenizer import EOT_TEXT, Tokenizer, train_tokenizer

story_tokenizer = train_tokenizer(book_stories("train"), book.BOOK_VOCAB_SIZE)

# %% [markdown]
# **Exercise 1.** From the chapter's table: `n`, `a`, `v` and `e` are ASCII, one byte each,
# and `ï` (U+00EF) takes two, so the word takes 4 + 2 = 6 bytes.

# %%
naive_bytes = 4 * 1 + 2

# %%
ch01.exercise_1(naive_bytes)

# %% [markdown]
# **Exercise 2.** The nine ids 97 98 97 98 97 98 99 97 98 have eight neighbouring pairs:
# (97, 98) four times, (98, 97) twice, (98, 99) and (99, 97) once each. Replacing every
# (97, 98) from the left leaves the `c` alone between them.

# %%
text_ids = list(b"abababcab")
print(Counter(pairwise(text_ids)).most_common())
most_frequent_pair = (97, 98)
ids_after_merge = [256, 256, 256, 99, 256]

# %%
ch01.exercise_2(most_frequent_pair, ids_after_merge)

# %% [markdown]
# **Exercise 3.** Every string is a sequence of UTF-8 bytes and a byte takes one of
# $2^8 = 256$ values, so 256 ids, one per byte value, can spell any string; merges only add
# shortcuts. With fewer, some byte would have no id.

# %%
minimum_ids = 2**8

# %%
ch01.exercise_3(minimum_ids)

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
# **Exercise 5.** Bytes over tokens, as in the chapter's `bytes_per_token`:

# %%
unfamiliar_text = "def bytes_per_token(tokenizer, texts): return sum(map(len, texts)) / 1e3\n"
unfamiliar_ids = story_tokenizer.encode(unfamiliar_text)
unfamiliar_bytes_per_token = len(unfamiliar_text.encode()) / len(unfamiliar_ids)
validation_bpt = (sum(len(story.encode()) for story in book_stories("validation"))
                  / sum(map(len, story_tokenizer.encode_batch(book_stories("validation")))))
print(f"Python line: {unfamiliar_bytes_per_token:.2f} bytes per token; "
      f"validation stories: {validation_bpt:.2f}")
print([story_tokenizer.decode([i]) for i in unfamiliar_ids])

# %%
ch01.exercise_5(unfamiliar_bytes_per_token, story_tokenizer, unfamiliar_text)
assert unfamiliar_bytes_per_token < validation_bpt / 2

# %% [markdown]
# The line packs less than half as many bytes into a token as the stories do, and not one of
# its words is a single token: ` return` splits into ` retur` + `n`, ` sum` into ` s` + `um`,
# `token` into `t` + `o` + `ken`. The merges were learned from stories, where these words are
# rare or absent, so code falls apart into short pieces and single characters. A tokenizer
# compresses the kind of text it was trained on.
