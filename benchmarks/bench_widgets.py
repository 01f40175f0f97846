"""Redraw latency of the book's explorers on the ``tiny`` preset (CPU).

Budget (issue 5): the attention explorer redraws within 0.5 s for a 64-token prompt. A redraw is
everything a reader waits for after moving a control: the model run (for a new text), building
the figure and rendering the PNG the widget shows. Prints the median of several redraws per
action and exits non-zero if an attention median is over budget.

    python benchmarks/bench_widgets.py [--repeats 9] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch

from transformer_lib import ModelConfig, Transformer
from transformer_lib.book import widgets

BUDGET_S = 0.5
PROMPT_TOKENS = 64


class ByteTokenizer:
    """One token per byte, so an ASCII prompt of 64 characters is exactly 64 tokens."""

    name = "bytes"
    vocab_size = 257
    eot_id = 256

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids):
        return bytes(i for i in ids if i < 256).decode(errors="replace")


def prompt(seed_word: str) -> str:
    text = (f"{seed_word} attention lets every token look back at the ones before it. " * 3)
    return text[:PROMPT_TOKENS]


def median_redraw_s(explorer, control: str, values: list, repeats: int) -> float:
    """Median wall time of setting ``control`` to each value in turn (one redraw each)."""
    times = []
    for k in range(repeats):
        value = values[k % len(values)]
        if explorer.controls[control].value == value:  # an unchanged value would not redraw
            value = values[(k + 1) % len(values)]
        count = explorer.redraw_count
        start = time.perf_counter()
        explorer.controls[control].value = value
        if widgets.ipywidgets is None:  # no Image widget: render the PNG a notebook would
            widgets.viz.figure_to_png(explorer.last_figure, dpi=explorer.dpi)
        times.append(time.perf_counter() - start)
        if explorer.redraw_count != count + 1 or explorer.error:
            raise RuntimeError(f"setting {control}={value!r} did not redraw: {explorer.error}")
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="redraws per action")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    config = ModelConfig.from_preset("tiny")
    model = Transformer(config).eval()
    tokenizer = ByteTokenizer()
    texts = [prompt("Self"), prompt("Causal")]
    assert all(len(tokenizer.encode(t)) == PROMPT_TOKENS for t in texts)

    attention = widgets.AttentionExplorer(model, tokenizer, text=texts[0])
    sampling = widgets.SamplingExplorer(model, tokenizer, prompt=texts[0])
    rope = widgets.RopeExplorer.from_config(config)
    tokens = widgets.TokenizerExplorer(tokenizer, text=texts[0])
    heads = list(range(config.num_heads))
    rows = [
        ("attention: change head (cached model run)",
         median_redraw_s(attention, "head", heads, args.repeats), True),
        ("attention: change layer",
         median_redraw_s(attention, "layer", list(range(config.num_layers)), args.repeats), True),
        ("attention: new 64-token text (model run + draw)",
         median_redraw_s(attention, "text", texts, args.repeats), True),
    ]
    attention.controls["head"].value = widgets.ALL
    rows += [
        (f"attention: all {config.num_heads} heads of a layer",
         median_redraw_s(attention, "layer", list(range(config.num_layers)), args.repeats),
         False),
        ("sampling: move top-k", median_redraw_s(sampling, "top_k", [5, 20, 50], args.repeats),
         False),
        ("rope: move position", median_redraw_s(rope, "position", [10, 40, 90], args.repeats),
         False),
        ("tokenizer: new text", median_redraw_s(tokens, "text", texts, args.repeats), False),
    ]

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"explorer redraw latency, preset 'tiny' ({config.num_layers} layers x "
          f"{config.num_heads} heads), {PROMPT_TOKENS}-token prompt, PNG at 100 dpi")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} with {torch.get_num_threads()} threads, load average {load}, "
          f"ipywidgets {'present' if widgets.ipywidgets else 'absent'}; "
          f"median of {args.repeats}")
    over_budget = False
    for name, seconds, budgeted in rows:
        verdict = ""
        if budgeted:
            verdict = "ok" if seconds <= BUDGET_S else f"OVER the {BUDGET_S} s budget"
            over_budget |= seconds > BUDGET_S
        print(f"  {name:<50} {seconds * 1000:7.0f} ms  {verdict}")
    return 1 if over_budget else 0


if __name__ == "__main__":
    sys.exit(main())
