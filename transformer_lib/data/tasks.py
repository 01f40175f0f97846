"""A task the pretrained model cannot do: write a story that uses three requested words.

Each training story of the book's extract gets a one-line header naming three words it uses::

    Words: ball, tree, brave
    One day, a brave little boy took his ball to the big tree...

The words come from :data:`TASK_WORDS`, a fixed list of 60 concrete nouns, adjectives and verbs
that each occur in roughly 1% to 15% of the extract's training stories (common enough to learn,
rare enough that a story does not use them by chance). A story's header takes three of the list
words it contains (whole words, case-insensitive, exactly that form: "trees" is not "tree"),
drawn with a seed per story and written in the order the story first uses them. Stories with
fewer than three list words are left out of the task's training set.

The score (:func:`words_score`) is the fraction of generated stories that contain all three
requested words, over held-out triples (:func:`held_out_triples`): triples drawn the same way
from the validation stories, leaving out any triple that heads a training text, the swapped
copies' headers included.

The model-facing functions take the model and tokenizer as arguments and only call their
methods, so this module stays in the data layer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import numpy as np
import torch

from ..checks import require_int

# Fixed, hand-picked; frequencies were read off the training extract once (see the module doc).
NOUNS = (
    "ball", "tree", "park", "house", "water", "sky", "sun", "garden", "room", "bird", "dog",
    "cat", "car", "box", "door", "bed", "flowers", "grass", "forest", "toy", "cake", "boat",
    "fish", "hat", "book", "rain", "river", "school", "kitchen", "sand", "bear", "bunny",
    "butterfly", "hill", "window",
)
ADJECTIVES = (
    "scared", "angry", "brave", "kind", "shiny", "pretty", "red", "blue", "green", "small",
    "soft", "loud", "funny", "tired", "hungry", "dark", "bright", "warm", "cold",
)
VERBS = ("jump", "run", "swim", "climb", "laugh", "share")
TASK_WORDS = NOUNS + ADJECTIVES + VERBS
HEADER_PREFIX = "Words: "
TASK_SEED = 0
NUM_HELD_OUT = 200
SWAPPED_COPIES = 2  # swapped copies of each story in the fine-tuning data (training_rows)
_WORD = re.compile(r"[a-z]+")


def story_words(story: str, vocabulary: Sequence[str] = TASK_WORDS) -> list[str]:
    """The vocabulary words a story uses, in the order it first uses them (whole words,
    case-insensitive)."""
    wanted = set(vocabulary)
    seen: dict[str, None] = {}
    for word in _WORD.findall(story.lower()):
        if word in wanted:
            seen.setdefault(word)
    return list(seen)


def choose_words(story: str, key: str, seed: int = TASK_SEED) -> tuple[str, ...] | None:
    """Three words for a story's header, drawn with seed (seed, key); None if it uses < 3."""
    present = story_words(story)
    if len(present) < 3:
        return None
    chosen = set(random.Random(f"{seed}:{key}").sample(present, 3))  # str seeds are stable
    return tuple(word for word in present if word in chosen)


def header(words: Sequence[str]) -> str:
    """The task's header line (without the newline): ``Words: ball, tree, brave``."""
    if len(words) != 3 or any(not isinstance(w, str) or not w for w in words):
        raise ValueError(f"a header names three non-empty words, got {list(words)!r}")
    return HEADER_PREFIX + ", ".join(words)


def plain_prompt(words: Sequence[str]) -> str:
    """The baseline prompt for a model never trained on headers: an ordinary story opening
    that mentions the words (what one would try with a pretrained model)."""
    first, second, third = words
    return f"This is a story about {first}, {second} and {third}.\n"


def headed_story(story: str, words: Sequence[str]) -> str:
    """A training text: the header line, then the story."""
    return header(words) + "\n" + story


def task_stories(stories: Sequence[str], split: str = "train",
                 seed: int = TASK_SEED) -> list[str]:
    """The stories that use at least three list words, each under its header."""
    out = []
    for index, story in enumerate(stories):
        words = choose_words(story, f"{split}:{index}", seed)
        if words is not None:
            out.append(headed_story(story, words))
    return out


def swapped_story(story: str, key: str, seed: int = TASK_SEED) -> str | None:
    """A headed story whose three header words were swapped in: None if it uses < 3, or if
    a word's kind has no list word left that the story does not use (five of the six verbs).

    The story's three words (:func:`choose_words`) are each replaced, everywhere the story uses
    them, by another list word of the same kind (noun, adjective or verb) that the story does
    not use, keeping a capital letter; the header names the new words. The result can read
    oddly ("she drove into the bird"), and that is the point: the pretrained model has seen the
    original story many times and can predict its words without the header, while a swapped-in
    word can only come from the header.
    """
    words = choose_words(story, key, seed)
    if words is None:
        return None
    rng = random.Random(f"swap:{seed}:{key}")
    present = set(story_words(story))
    new: list[str] = []
    for word in words:
        kind = NOUNS if word in NOUNS else ADJECTIVES if word in ADJECTIVES else VERBS
        unused = [w for w in kind if w not in present and w not in new]
        if not unused:
            return None
        new.append(rng.choice(unused))
    mapping = dict(zip(words, new, strict=True))

    def swap(match: re.Match) -> str:
        text = match.group(0)
        replacement = mapping[text.lower()]
        return replacement.capitalize() if text[0].isupper() else replacement

    pattern = re.compile(r"\b(" + "|".join(words) + r")\b", re.IGNORECASE)
    return headed_story(pattern.sub(swap, story), new)


def training_rows(stories: Sequence[str], tokenizer, seq_len: int, *,
                  swapped_copies: int = SWAPPED_COPIES,
                  word_weight: float = 5.0,
                  seed: int = TASK_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The task's fine-tuning data: (rows, weights), each (N, seq_len + 1), for the trainer.

    One row per headed story, from the end-of-text token before its header, cut or padded
    (with end-of-text, weight 0) to seq_len + 1 tokens: the task's stories as they are
    (:func:`task_stories`), then ``swapped_copies`` passes of :func:`swapped_story`, each with
    other swaps. The weights say what the loss counts: nothing of the header (it is the prompt;
    its words are arbitrary), 1 for each story token, and ``word_weight`` for a token that
    starts one of the header's words in the story (" ball", " Ball" or "Ball"), where the
    model has to look back at the header. Rows come in a fixed, shuffled order.

    The weighted tokens are found by id, not by word: where a word's first token also starts
    other words (" kind" in " kindly", or a one-letter piece), those get the weight too; about
    a tenth of the weighted tokens with the book's tokenizer. With a sentencepiece tokenizer
    (llama2.c's), whose words start with a lone space piece, every such space would be
    weighted: the recipe is meant for byte-level BPEs like the book's.
    """
    require_int("seq_len", seq_len, 1)
    require_int("swapped_copies", swapped_copies, 0)
    if not word_weight >= 1:
        raise ValueError(f"word_weight={word_weight} must be >= 1 (1 weighs every token alike)")
    texts = task_stories(stories, "train", seed)
    for copy in range(1, swapped_copies + 1):
        texts += [text for index, story in enumerate(stories)
                  if (text := swapped_story(story, f"train:{index}:{copy}", seed)) is not None]
    random.Random(f"rows:{seed}").shuffle(texts)
    width = seq_len + 1
    rows = np.full((len(texts), width), tokenizer.eot_id, dtype=np.int64)
    weights = np.zeros((len(texts), width), dtype=np.float32)
    for row, text in enumerate(texts):
        head, story = text.split("\n", 1)
        prompt = [tokenizer.eot_id] + tokenizer.encode(head + "\n")
        ids = (prompt + tokenizer.encode(story))[:width]
        starts = {tokenizer.encode(form)[0] for word in head[len(HEADER_PREFIX):].split(", ")
                  for form in (" " + word, " " + word.capitalize(), word.capitalize())}
        rows[row, :len(ids)] = ids
        weights[row, len(prompt):len(ids)] = 1.0
        for position in range(len(prompt), len(ids)):
            if ids[position] in starts:
                weights[row, position] = word_weight
    return rows, weights


def encode_texts(texts: Sequence[str], tokenizer) -> np.ndarray:
    """One flat token array laid out as the token caches are: eot, then each text + eot."""
    ids = [tokenizer.eot_id]
    for encoded in tokenizer.encode_batch(list(texts), add_eot=True):
        ids.extend(encoded)
    return np.asarray(ids, dtype=np.int64)


def training_triples(stories: Sequence[str], seed: int = TASK_SEED,
                     swapped_copies: int = SWAPPED_COPIES) -> set[frozenset[str]]:
    """The word sets that head the training texts of :func:`training_rows`: the stories'
    own, and those of their ``swapped_copies`` swapped copies (as sets: order does not
    matter)."""
    require_int("swapped_copies", swapped_copies, 0)
    triples = set()
    for index, story in enumerate(stories):
        words = choose_words(story, f"train:{index}", seed)
        if words is None:
            continue
        triples.add(frozenset(words))
        for copy in range(1, swapped_copies + 1):
            swapped = swapped_story(story, f"train:{index}:{copy}", seed)
            if swapped is not None:
                head = swapped.split("\n", 1)[0].removeprefix(HEADER_PREFIX)
                triples.add(frozenset(head.split(", ")))
    return triples


def held_out_triples(validation_stories: Sequence[str], training_stories: Sequence[str],
                     count: int = NUM_HELD_OUT, seed: int = TASK_SEED,
                     swapped_copies: int = SWAPPED_COPIES) -> list[tuple[str, ...]]:
    """``count`` distinct word triples from the validation stories, none heading a training
    text of :func:`training_rows` with ``swapped_copies``; the first ones in story order
    (every draw is seeded, so the list is fixed)."""
    require_int("count", count, 1)
    seen_in_training = training_triples(training_stories, seed, swapped_copies)
    chosen: list[tuple[str, ...]] = []
    used: set[frozenset[str]] = set()
    for index, story in enumerate(validation_stories):
        words = choose_words(story, f"validation:{index}", seed)
        if words is None or frozenset(words) in seen_in_training | used:
            continue
        used.add(frozenset(words))
        chosen.append(words)
        if len(chosen) == count:
            return chosen
    raise ValueError(f"only {len(chosen)} held-out triples found in {len(validation_stories)} "
                     f"validation stories; {count} were asked for")


def uses_all(text: str, words: Sequence[str]) -> bool:
    """True if text contains every word as a whole word (case-insensitive)."""
    present = set(_WORD.findall(text.lower()))
    return all(word.lower() in present for word in words)


def words_score(texts: Sequence[str], triples: Sequence[Sequence[str]]) -> float:
    """The fraction of texts that use all three words of their triple."""
    if len(texts) != len(triples) or not texts:
        raise ValueError(f"one text per triple is needed: {len(texts)} texts, "
                         f"{len(triples)} triples")
    return sum(uses_all(text, words) for text, words in zip(texts, triples, strict=True)) / len(texts)


def generate_for_prompts(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 160,
                         temperature: float = 0.8, seed: int = TASK_SEED,
                         batch_size: int = 50) -> list[str]:
    """One story per prompt (the text after the prompt, up to the end-of-text token).

    Every prompt starts after an end-of-text token, as stories do in training. Prompts of equal
    token length are sampled together (``model.generate`` takes equal-length batches), in a
    fixed order and with one seeded generator, so the result is fixed on a given machine.
    """
    require_int("max_new_tokens", max_new_tokens, 1)
    encoded = [[tokenizer.eot_id] + tokenizer.encode(prompt) for prompt in prompts]
    by_length: dict[int, list[int]] = {}
    for index, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(index)
    generator = torch.Generator().manual_seed(seed)
    outputs: list[str | None] = [None] * len(prompts)
    for length in sorted(by_length):
        indices = by_length[length]
        for first in range(0, len(indices), batch_size):
            group = indices[first:first + batch_size]
            prompt_ids = torch.tensor([encoded[i] for i in group])  # (b, length)
            new = min(max_new_tokens, model.config.max_seq_len - length)
            out = model.generate(prompt_ids, new, temperature=temperature,
                                 eos_id=tokenizer.eot_id, generator=generator)
            for row, index in zip(out[:, length:].tolist(), group, strict=True):
                if tokenizer.eot_id in row:
                    row = row[:row.index(tokenizer.eot_id)]
                outputs[index] = tokenizer.decode(row)
    return outputs  # type: ignore[return-value]


def score_model(model, tokenizer, triples: Sequence[Sequence[str]], prompt: str = "header",
                **generation) -> tuple[float, list[str]]:
    """(score, stories) of a model on triples, prompted with the header or the plain prompt."""
    if prompt not in ("header", "plain"):
        raise ValueError(f"prompt must be 'header' or 'plain', got {prompt!r}")
    make = (lambda words: header(words) + "\n") if prompt == "header" else plain_prompt
    texts = generate_for_prompts(model, tokenizer, [make(words) for words in triples],
                                 **generation)
    return words_score(texts, triples), texts
