"""The reader's own pieces: functions written in one chapter's exercises, kept for a later one.

Chapters 2 to 6 ask the reader to write a component (``rms_norm``, the RoPE tables, attention,
SwiGLU, a block). After its check, :func:`keep` saves the function's source in a folder beside
the notebook (``my_pieces/`` in the kernel's working directory), and chapter 6 reads them all
back with :func:`load_pieces` to run the reader's own model on real weights.

Only the reader's own code is stored and read back (it runs in their kernel either way). A
function is kept only once it passes its exercise's check, so neither the placeholder ``...``
nor a half-finished edit overwrites a piece the reader wrote earlier.
"""

from __future__ import annotations

import importlib
import inspect
import math
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..fileio import write_text_atomically
from ..model.generation import sample_next_token
from .checking import is_placeholder_source, judge, say

PIECES_DIR = Path("my_pieces")  # relative to the notebook's folder: the kernel's working directory
# Which chapter asks for each piece (the order chapter 6 assembles them in).
PIECES = {
    "rms_norm": 2,
    "rope_tables": 3,
    "apply_rope": 3,
    "attention": 4,
    "swiglu": 5,
    "block_forward": 6,
    "model_forward": 6,
}
# The check each piece must pass to be kept: (its chapter's exercise module, the predicate its
# exercise runs). Imported when needed, as the exercise modules import this one.
PIECE_CHECKS = {
    "rms_norm": ("ch02", "compare_rms_norm"),
    "rope_tables": ("ch03", "compare_rope_tables"),
    "apply_rope": ("ch03", "compare_apply_rope"),
    "attention": ("ch04", "compare_attention"),
    "swiglu": ("ch05", "compare_swiglu"),
    "block_forward": ("ch06", "compare_block_forward"),
    "model_forward": ("ch06", "compare_model_forward"),
}


def _check_name(name: str) -> None:
    if name not in PIECES:
        raise ValueError(f"unknown piece {name!r}; the pieces are {', '.join(PIECES)}")


def keep(function: Callable, folder: str | Path = PIECES_DIR) -> None:
    """Save the reader's ``function`` (named as one of :data:`PIECES`) for chapter 6.

    Prints one line: where it was kept, or why nothing was written (a piece kept earlier then
    stays as it was): its body is still ``...``; it does not pass its exercise's check yet; or
    it passes only with a name defined outside it, which chapter 6, reading the function's
    source alone, will not have. The check runs on the function rebuilt as chapter 6 rebuilds
    it, with the library's versions standing in for pieces not kept yet.
    """
    name = getattr(function, "__name__", None)
    _check_name(name)
    source = textwrap.dedent(inspect.getsource(function))
    if is_placeholder_source(source):
        print(f"{name}: still `...`, not kept (chapter 6 uses it once you write it)")
        return
    rebuilt = _rebuilt(name, source, folder)
    if rebuilt is None or not passes_its_check(rebuilt):
        if passes_its_check(function):
            say(f"{name}: not kept: it passes its check here, but uses a name defined outside "
                f"it (a helper or an import in another cell), which chapter 6, reading the "
                f"function's source alone, will not have; move it inside the function")
        else:
            say(f"{name}: not kept, as it does not pass its check yet (the check cell says "
                f"what differs); chapter 6 keeps what was kept before, if anything")
        return
    path = Path(folder) / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, source)
    print(f"{name}: kept in {path.as_posix()} for chapter 6")


def _rebuilt(name: str, source: str, folder: str | Path) -> Callable | None:
    """The function as chapter 6 will have it: its source alone, run in :func:`load_pieces`'
    namespace, the library's versions standing in for earlier pieces not kept yet; None if
    the source does not even run there."""
    from .exercises.ch06 import library_block_output  # lazily: the exercises import this module

    earlier = list(PIECES)[:list(PIECES).index(name)]
    namespace = {**_reader_namespace(), **library_pieces(), "block_forward": library_block_output}
    namespace.update((piece, fn) for piece, fn in load_pieces(folder, earlier).items()
                     if fn is not None)
    try:
        exec(compile(source, f"<your {name}>", "exec"), namespace)  # the reader's own code
    except Exception:  # noqa: BLE001 - e.g. a decorator defined in another cell
        return None
    return namespace.get(name)


def passes_its_check(function: Callable) -> bool:
    """Whether the reader's piece passes the check of the exercise that asks for it."""
    _check_name(function.__name__)
    module_name, predicate = PIECE_CHECKS[function.__name__]
    module = importlib.import_module(f"{__package__}.exercises.{module_name}")
    with torch.random.fork_rng(devices=[]):  # as the check cell: the reader's stream untouched
        passed, _ = judge(function, getattr(module, predicate), hint="")
    return passed


def load_pieces(folder: str | Path = PIECES_DIR,
                names: Iterable[str] = PIECES) -> dict[str, Callable | None]:
    """The reader's kept pieces by name, None for each one not written yet.

    Each source runs in a namespace holding ``torch``, ``math``, ``F`` (torch.nn.functional) and
    the pieces loaded before it, in :data:`PIECES` order, so a block may call the reader's own
    ``rms_norm`` and ``attention``.
    """
    namespace = _reader_namespace()
    pieces: dict[str, Callable | None] = {}
    for name in names:
        _check_name(name)
        path = Path(folder) / f"{name}.py"
        if not path.is_file():
            pieces[name] = None
            continue
        source = path.read_text(encoding="utf-8")
        if is_placeholder_source(source):
            pieces[name] = None
            continue
        exec(compile(source, str(path), "exec"), namespace)  # the reader's own code
        pieces[name] = namespace[name]
    return pieces


def _reader_namespace() -> dict:
    """What a kept piece's source may use besides the pieces: torch, math and F."""
    return {"torch": torch, "math": math, "F": F}


def missing(pieces: dict[str, Callable | None]) -> list[str]:
    """The pieces not written yet, each with the chapter that asks for it."""
    return [f"{name} (chapter {PIECES[name]})" for name, fn in pieces.items() if fn is None]


# ---- the library's versions, with the pieces' signatures -------------------------------------
# The exercises compare the reader's pieces with these, and chapter 6's block exercise may use
# them while one of the reader's pieces is still missing. The assembly below never does.


def library_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal grouped-query attention: q (B, H, T, D), k and v (B, K, S, D) -> (B, H, T, D).

    The T queries are the *last* T of the S positions (T < S after a KV cache's earlier
    positions), so query t sees keys 0 .. S - T + t. H is a multiple of K: query head h reads
    key/value head h // (H / K).
    """
    T, S = q.shape[-2], k.shape[-2]
    groups = q.shape[-3] // k.shape[-3]
    k, v = k.repeat_interleave(groups, dim=-3), v.repeat_interleave(groups, dim=-3)  # (B, H, S, D)
    visible = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)  # (T, S)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=visible)


def library_swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor,
                   w_down: torch.Tensor) -> torch.Tensor:
    """down(silu(gate(x)) * up(x)); weights in nn.Linear's (out, in) layout: w_gate and w_up
    (F, C), w_down (C, F)."""
    return F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


def library_pieces() -> dict[str, Callable]:
    """The library's rms_norm, rope_tables, apply_rope, attention and swiglu, by piece name."""
    from ..model.rmsnorm import rms_norm
    from ..model.rope import apply_rope, rope_tables

    return {"rms_norm": rms_norm, "rope_tables": rope_tables, "apply_rope": apply_rope,
            "attention": library_attention, "swiglu": library_swiglu}


# ---- a library model's weights, as the reader's block_forward and model_forward take them ----

LAYER_WEIGHTS = {  # the reader's name -> the library Block's parameter
    "attention_norm": "input_layernorm.weight",
    "wq": "self_attn.q_proj.weight",  # (H*D, C)
    "wk": "self_attn.k_proj.weight",  # (K*D, C)
    "wv": "self_attn.v_proj.weight",  # (K*D, C)
    "wo": "self_attn.o_proj.weight",  # (C, H*D)
    "ffn_norm": "post_attention_layernorm.weight",
    "w_gate": "mlp.gate_proj.weight",  # (F, C)
    "w_up": "mlp.up_proj.weight",  # (F, C)
    "w_down": "mlp.down_proj.weight",  # (C, F)
}


def layer_weights(block: torch.nn.Module) -> dict[str, torch.Tensor]:
    """One library Block's weights under the names the reader's block_forward reads."""
    state = block.state_dict()
    return {name: state[key].detach() for name, key in LAYER_WEIGHTS.items()}


def model_weights(model: torch.nn.Module) -> dict:
    """A library Transformer's weights as the reader's model_forward takes them:
    {"embedding": (V, C), "layers": [one dict per block], "norm": (C,), "lm_head": (V, C)}.
    With tied embeddings "lm_head" is the embedding tensor itself."""
    return {"embedding": model.embed_tokens.weight.detach(),
            "layers": [layer_weights(block) for block in model.layers],
            "norm": model.norm.weight.detach(),
            "lm_head": model.lm_head.weight.detach()}


# ---- the reader's model ----------------------------------------------------------------------

NEEDED = ("rms_norm", "rope_tables", "apply_rope", "attention", "swiglu", "block_forward",
          "model_forward")


@dataclass
class ReadersModel:
    """A forward pass made only of the reader's pieces, running a library model's weights."""

    pieces: dict[str, Callable]
    weights: dict
    head_dim: int
    rope_theta: float
    norm_eps: float
    max_seq_len: int

    @torch.no_grad()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> logits (B, T, V), with the reader's rope_tables and model_forward."""
        T = ids.shape[-1]
        cos, sin = self.pieces["rope_tables"](self.head_dim, T, self.rope_theta)  # (T, D) each
        return self.pieces["model_forward"](ids, self.weights, cos, sin, self.norm_eps)

    def greedy(self, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        """The prompt and up to max_new_tokens more, each the most likely next token (no cache:
        every step runs the whole sequence through the reader's model_forward)."""
        ids = list(prompt_ids)
        for _ in range(min(max_new_tokens, self.max_seq_len - len(ids))):
            ids.append(int(self.logits(torch.tensor([ids]))[0, -1].argmax()))
        return ids


def assemble(pieces: dict[str, Callable | None], model: torch.nn.Module) -> ReadersModel | None:
    """The reader's model with ``model``'s weights, or None (saying which pieces are missing)
    while any piece is still unwritten: nothing stands in for a missing piece."""
    absent = missing({name: pieces.get(name) for name in NEEDED})
    if absent:
        say("not assembled, and nothing stands in for a missing piece: still to write "
            + ", ".join(absent))
        return None
    config = model.config
    return ReadersModel({name: pieces[name] for name in NEEDED}, model_weights(model),
                        config.head_dim, config.rope_theta, config.norm_eps, config.max_seq_len)


def run_readers_model(pieces: dict[str, Callable | None], model: torch.nn.Module, tokenizer,
                      text: str, prompt: str, max_new_tokens: int, name: str) -> dict | None:
    """Assemble the reader's model on ``model``'s weights, compare its logits on ``text`` with
    the library's, and write a greedy story after ``prompt``. Prints what it did; returns
    {"max_difference", "story_ids", "library_ids", "story"}, or None when pieces are missing."""
    mine = assemble(pieces, model)
    if mine is None:
        return None
    ids = torch.tensor([[tokenizer.eot_id] + tokenizer.encode(text)])  # (1, T)
    with torch.no_grad():
        library_logits = model(ids)
    difference = (mine.logits(ids) - library_logits).abs().max().item()
    verdict = "within" if difference <= 1e-4 else "NOT within"
    print(f"{name}: your logits on {ids.shape[1]} tokens are {verdict} 1e-4 of the library's")
    prompt_ids = [tokenizer.eot_id] + tokenizer.encode(prompt)
    story_ids = mine.greedy(prompt_ids, max_new_tokens)
    library_ids = model.generate(prompt_ids, len(story_ids) - len(prompt_ids),
                                 temperature=0.0).tolist()
    story = tokenizer.decode(story_ids[1:])
    print(f"{name}, written by your code:\n{story}")
    return {"max_difference": difference, "story_ids": story_ids, "library_ids": library_ids,
            "story": story}


def describe(pieces: dict[str, Callable | None]) -> None:
    """Print, for each piece, whether it is the reader's (and from which chapter) or missing."""
    for name in NEEDED:
        state = "yours" if pieces.get(name) is not None else "missing"
        print(f"{name:14} chapter {PIECES[name]}: {state}")


# ---- the reader's sampler ------------------------------------------------------------------


@torch.no_grad()
def _sampled_ids(sampler: Callable, model: torch.nn.Module, prompt_ids: list[int],
                 max_new_tokens: int, settings: tuple, seed: int, stop_id: int | None) -> list[int]:
    """The prompt and the tokens ``sampler(logits (1, V), *settings, generator)`` draws, one at a
    time, from ``model``'s logits for the whole sequence so far (no cache, so both samplers see
    exactly the same logits)."""
    generator = torch.Generator().manual_seed(seed)
    ids = list(prompt_ids)
    for _ in range(min(max_new_tokens, model.config.max_seq_len - len(ids))):
        logits = model(torch.tensor([ids]))[:, -1]  # (1, V)
        token = sampler(logits, *settings, generator)
        if token is None:
            return []
        ids.append(int(torch.as_tensor(token).reshape(-1)[0]))
        if ids[-1] == stop_id:
            break
    return ids


def sample_story(next_token: Callable, model: torch.nn.Module, tokenizer, prompt: str, *,
                 max_new_tokens: int = 100, temperature: float = 0.8, top_k: int | None = 50,
                 top_p: float | None = 0.9, seed: int = 0) -> dict | None:
    """Write a story whose every token the reader's ``next_token`` draws from ``model``'s logits,
    and the same with the library's ``sample_next_token`` (same logits, generators seeded alike).
    Prints the reader's story; returns {"story", "ids", "library_ids"}, or None (saying so) while
    ``next_token`` is unwritten: nothing stands in for it."""
    prompt_ids = [tokenizer.eot_id] + tokenizer.encode(prompt)
    settings = (temperature, top_k, top_p)
    ids = _sampled_ids(next_token, model, prompt_ids, max_new_tokens, settings, seed,
                       tokenizer.eot_id)
    if not ids:
        say("no story yet: next_token is still the placeholder, and nothing stands in for it")
        return None
    library_ids = _sampled_ids(sample_next_token, model, prompt_ids, max_new_tokens, settings,
                               seed, tokenizer.eot_id)
    story = tokenizer.decode([i for i in ids[1:] if i != tokenizer.eot_id])
    print(f"written by your next_token (temperature {temperature}, top-k {top_k}, top-p "
          f"{top_p}, seed {seed}):\n{story}")
    return {"story": story, "ids": ids, "library_ids": library_ids}
