"""Compare decoding methods on the stored model: how varied, how repetitive, how likely.

Usage (about two minutes on a 2-core CPU)::

    TINYSTORIES_PATH=/path/to/the/extract python book_config/make_decoding_table.py

For each method below it continues 20 fixed prompts (the first six words of the first 20
stories of the book's validation extract) by up to 100 tokens, stopping at end-of-text, with a
seeded generator per prompt, and measures over the 20 continuations together:

- distinct-2: distinct token bigrams / bigrams (Li et al., 2016; higher = more varied);
- repeated 4-grams: the fraction of 4-grams that repeat an earlier one of the same
  continuation (chapter 8's measure of greedy loops);
- own bits per byte: the stored model's surprise at its own continuations (end-of-text
  included when chosen), per UTF-8 byte; a decoder that picks likely tokens scores low.

It writes ``transformer_lib/assets/decoding/table.json`` (figures, settings, one story per
method and the machine) and prints the table. Greedy and beam search follow the argmax, so a
logit that ties to float32 rounding on another CPU may change a few stories there.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import torch

from transformer_lib import book
from transformer_lib.analysis.diversity import (
    continuation_bits_per_byte,
    distinct_n,
    repeated_ngram_rate,
)
from transformer_lib.data import book_stories
from transformer_lib.training.metrics import token_byte_lengths

OUT = Path(__file__).resolve().parents[1] / "transformer_lib" / "assets" / "decoding" / "table.json"
METHODS = {
    "greedy": dict(temperature=0.0),
    "sampling, T=0.8": dict(temperature=0.8),
    "top-p 0.9": dict(temperature=1.0, top_p=0.9),
    "min-p 0.1": dict(temperature=1.0, min_p=0.1),
    "beam search, 4 beams": dict(num_beams=4),
    "greedy, repetition penalty 1.2": dict(temperature=0.0, repetition_penalty=1.2),
}
NUM_PROMPTS, PROMPT_WORDS, NEW_TOKENS = 20, 6, 100


def prompts(count: int = NUM_PROMPTS, words: int = PROMPT_WORDS) -> list[str]:
    """The first ``words`` words of the first ``count`` validation stories of the extract."""
    return [" ".join(story.split()[:words]) for story in
            itertools.islice(book_stories("validation"), count)]


def continuations(model, tokenizer, texts, settings) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, new ids up to and including the first end-of-text) for each text."""
    eot = tokenizer.eot_id
    results = []
    for seed, text in enumerate(texts):
        prompt = [eot] + tokenizer.encode(text)
        out = model.generate(prompt, NEW_TOKENS, eos_id=eot,
                             generator=torch.Generator().manual_seed(seed), **settings)
        new = out[len(prompt):].tolist()
        if eot in new:
            new = new[:new.index(eot) + 1]
        results.append((prompt, new))
    return results


def measure(model, tokenizer, pairs, byte_lengths) -> dict:
    eot = tokenizer.eot_id
    texts = [[t for t in new if t != eot] for _, new in pairs]
    bits = size = 0.0
    for prompt, new in pairs:
        b, n = continuation_bits_per_byte(model, prompt, new, byte_lengths)
        bits, size = bits + b, size + n
    return {"distinct_2": distinct_n(texts, 2), "repeated_4gram_rate": repeated_ngram_rate(texts, 4),
            "own_bits_per_byte": bits / size,
            "mean_new_tokens": sum(len(new) for _, new in pairs) / len(pairs),
            "ended_with_eot": sum(eot in new for _, new in pairs)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the figures must not depend on the thread count's reductions
    stored = book.stored_model()
    model, tokenizer = stored.model, stored.tokenizer
    byte_lengths = token_byte_lengths(tokenizer)
    texts = prompts()
    table, stories = {}, {}
    start = time.perf_counter()
    for name, settings in METHODS.items():
        pairs = continuations(model, tokenizer, texts, settings)
        table[name] = measure(model, tokenizer, pairs, byte_lengths)
        prompt, new = pairs[0]
        stories[name] = tokenizer.decode(prompt[1:] + [t for t in new if t != tokenizer.eot_id])
    result = {
        "model": "transformer_lib/assets/tinystories-1M (book.stored_model())",
        "prompts": f"the first {PROMPT_WORDS} words of the first {NUM_PROMPTS} validation "
                   f"stories of the book's extract, after end-of-text",
        "new_tokens": NEW_TOKENS, "stop": "at end-of-text", "seeds": "generator seed = prompt index",
        "settings": METHODS, "table": table, "first_prompt_story": stories,
        "meta": {"torch": torch.__version__, "machine": platform.machine(),
                 "processor": platform.processor(), "threads": 1,
                 "seconds": round(time.perf_counter() - start, 1),
                 "command": "python book_config/make_decoding_table.py"},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'method':<32}{'distinct-2':>11}{'rep. 4-grams':>14}{'own bits/byte':>15}"
          f"{'tokens':>8}")
    for name, row in table.items():
        print(f"{name:<32}{row['distinct_2']:>11.3f}{row['repeated_4gram_rate']:>14.3f}"
              f"{row['own_bits_per_byte']:>15.3f}{row['mean_new_tokens']:>8.1f}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
