# %% [markdown]
# # Solutions to chapter 8: Generation
#
# The answers to the exercises of chapter 8, checked with the same functions the chapter calls,
# so every check below prints `correct`. Like the chapter, this notebook studies the book's
# stored model; the experiment (exercise 3) is run here, and what it measured is stated beside
# its output.

# %%
import torch

from transformer_lib import book
from transformer_lib.book.exercises import ch08

_ = torch.manual_seed(0)  # every random draw below is reproducible
# One token at a time is a stream of tiny operations: one thread runs them faster than several,
# which spend their time waiting for each other (several times faster on a busy 2-core machine).
torch.set_num_threads(1)
stored = book.stored_model()
model, tokenizer = stored.model, stored.tokenizer
prompt_text = "Once upon a time, there was a little"
prompt = [tokenizer.eot_id] + tokenizer.encode(prompt_text)  # the chapter's prompt

# %% [markdown]
# ## Exercise 1
#
# Without a cache, step $t$ (counting from 0) runs the model over the whole sequence so far,
# $P + t$ positions, and there are $N$ steps: $\sum_{t=0}^{N-1} (P + t) = NP + N(N-1)/2$. With a
# cache, the first step processes the prompt once ($P$ positions) and each of the other $N - 1$
# steps feeds only the token chosen at the step before: $P + N - 1$. (The $N$-th new token is
# sampled from the last step's logits and never goes through the model.)

# %%
def positions(P: int, N: int) -> tuple[int, int]:
    """(positions without a cache, positions with one) for N new tokens after P prompt tokens."""
    return N * P + N * (N - 1) // 2, P + N - 1


print("P = 9, N = 30:", positions(9, 30))

# %%
ch08.exercise_1(positions)

# %% [markdown]
# ## Exercise 2
#
# Counting straight from the sorted probabilities: top-p keeps every token whose cumulative
# probability *before* it is still under 0.9. A lower temperature sharpens the distribution, so
# it can only keep as many tokens or fewer, never more.

# %%
with torch.no_grad():
    logits = model(torch.tensor([prompt]))[0, -1]  # the chapter's next-token logits


def nucleus_count(logits: torch.Tensor, temperature: float, p: float = 0.9) -> int:
    """How many tokens top-p keeps after dividing the logits by the temperature."""
    probs = torch.softmax(logits / temperature, dim=-1).sort(descending=True).values
    return int((torch.cumsum(probs, dim=-1) < p).sum()) + 1


kept = (nucleus_count(logits, 1.0), nucleus_count(logits, 0.5))
print(f"top-p 0.9 keeps {kept[0]} tokens at temperature 1 and {kept[1]} at temperature 0.5")
for temperature in (1.0, 0.5):
    top_two = torch.softmax(logits / temperature, dim=-1).topk(2)
    names = [tokenizer.decode([int(i)]) for i in top_two.indices]
    print(f"temperature {temperature}: {names[0]!r} {top_two.values[0]:.2f}, "
          f"{names[1]!r} {top_two.values[1]:.2f}")

# %% [markdown]
# Here the counts are equal: two tokens both times. At temperature 1, " girl" and " boy" hold
# 0.55 and 0.38 of the probability, 0.93 together. At 0.5 the sharpening moves probability from
# " boy" to " girl", but " girl" alone still holds less than 0.9, so top-p still needs both.
# Temperature narrows the nucleus only once the top tokens alone pass $p$.

# %%
assert kept[1] <= kept[0] and kept == (2, 2)
ch08.exercise_2(kept, logits)

# %% [markdown]
# ## Exercise 3 (experiment)
#
# 240 new tokens after the chapter's prompt at five temperatures, each drawn with the same seed,
# and the fraction of 4-grams that repeat an earlier 4-gram of the same continuation.

# %%
def repeated_fraction(ids: list[int], n: int = 4) -> float:
    """Fraction of the n-grams of ids that already occurred earlier in ids."""
    seen, repeats = set(), 0
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams)


continuations = {}
for temperature in (0.0, 0.5, 0.8, 1.0, 1.5):
    out = model.generate(prompt, 240, temperature=temperature,
                         generator=torch.Generator().manual_seed(0))
    continuations[temperature] = out.tolist()[len(prompt):]
repetition = {t: repeated_fraction(ids) for t, ids in continuations.items()}
for temperature, fraction in repetition.items():
    print(f"temperature {temperature}: {fraction:.2f} of the 4-grams are repeats")

# %% [markdown]
# Greedy decoding repeats itself heavily: 0.61 of its 4-grams occurred earlier in the same
# continuation, because once a phrase is the most likely continuation of itself nothing breaks
# the loop. Sampling breaks it at once: 0.04 at temperature 0.5, 0.02 at 0.8, and 0.00 (to two
# decimals) at 1 and above. A low fraction of repeats does not mean good text, though. The
# beginning of each end of the range:

# %%
for temperature in (0.0, 1.5):
    print(f"[temperature {temperature}]\n{tokenizer.decode(continuations[temperature][:40])}\n")

# %% [markdown]
# The greedy text is fluent but circles; at 1.5 nothing repeats because the text has fallen
# apart into invented words. The temperatures in between, around 0.8, read best.

# %%
assert repetition[0.0] > 0.5 and repetition[0.5] < 0.1
assert list(repetition.values()) == sorted(repetition.values(), reverse=True)
ch08.exercise_3(repetition)
