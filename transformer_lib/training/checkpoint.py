"""Checkpoints: weights in safetensors, training state through weights-only torch.load, JSON meta.

Layout of a run directory::

    run/
      latest                      # one line: the name of the newest complete checkpoint
      checkpoints/step_00000500/  # model.safetensors, state.pt, meta.json, tokenizer.json
      log.jsonl                   # one JSON record per logged step and evaluation

A checkpoint is written into a hidden temporary directory and renamed into place, then ``latest``
is replaced atomically; a kill at any moment leaves a complete checkpoint named by ``latest``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from ..fileio import fsync_directory, fsync_file, write_text_atomically
from ..model.config import ModelConfig
from ..model.lora import LoRAConfig, add_lora, lora_config_of, lora_layers
from ..model.transformer import Transformer

FORMAT = 1
WEIGHTS, STATE, META, TOKENIZER = "model.safetensors", "state.pt", "meta.json", "tokenizer.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt or does not match what loads it."""


RESERVED_META = ("format", "step", "model_config", "lora")  # written by save_checkpoint itself


def _link_or_copy_tree(source: Path, target: Path) -> None:
    """A second, complete name for checkpoint ``source``: hard links where possible."""
    target.mkdir()
    for file in source.iterdir():
        try:
            os.link(file, target / file.name)
        except OSError:  # a file system without hard links
            shutil.copy2(file, target / file.name)
    fsync_directory(target)


def _point_latest(run_dir: Path, checkpoint: Path) -> None:
    write_text_atomically(run_dir / "latest", f"{checkpoint.relative_to(run_dir).as_posix()}\n")


def _latest_target(run_dir: Path) -> Path | None:
    try:
        return (run_dir / (run_dir / "latest").read_text(encoding="utf-8").strip()).resolve()
    except OSError:
        return None


def save_checkpoint(run_dir: str | os.PathLike, model: Transformer, step: int, meta: dict,
                    state: dict | None = None, tokenizer_file: str | os.PathLike | None = None,
                    keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it, keep the newest ``keep``.

    Every move is ordered so that a kill at any instant leaves ``latest`` naming a complete
    checkpoint: the new one is written hidden and fsynced; a step that already exists is first
    given a second name (hard links), ``latest`` moves there while the old folder is replaced,
    and only then is the old name reused. Pruning never touches the checkpoint just written, and
    leftovers of killed saves (hidden folders, step folders without metadata) are removed.
    ``keep=0`` keeps every checkpoint.
    """
    reserved = sorted(set(meta) & set(RESERVED_META))
    if reserved:
        raise ValueError(f"meta keys {reserved} are written by save_checkpoint itself and "
                         f"cannot be given by the caller")
    layers = lora_layers(model)
    if any(layer.merged for layer in layers.values()):
        raise ValueError("the model's LoRA layers are merged: unmerge them before saving (or "
                         "save merged_copy(model), a plain model)")
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    tmp = checkpoints / f".{name}.tmp-{os.getpid()}"  # hidden until complete
    tmp.mkdir()
    save_model(model, str(tmp / WEIGHTS))
    if state is not None:
        torch.save(state, tmp / STATE)
    if tokenizer_file is not None:
        shutil.copyfile(tokenizer_file, tmp / TOKENIZER)
    full_meta = {**meta, "format": FORMAT, "step": step, "model_config": model.config.to_dict()}
    if layers:  # a LoRA run: its checkpoints hold the base weights and the adapters
        full_meta["lora"] = lora_config_of(model).to_dict()
    (tmp / META).write_text(json.dumps(full_meta, indent=1), encoding="utf-8")
    for file in tmp.iterdir():  # data on disk before the rename makes it visible
        fsync_file(file)
    fsync_directory(tmp)
    final = checkpoints / name
    if final.exists():
        # latest may name `final`: give it a second name and point latest there first.
        old = checkpoints / f".{name}.old-{os.getpid()}"
        _link_or_copy_tree(final, old)
        _point_latest(run_dir, old)
        shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_directory(checkpoints)
        _point_latest(run_dir, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
        fsync_directory(checkpoints)
        _point_latest(run_dir, final)
    _remove_stale(run_dir, checkpoints)
    if keep:
        others = sorted(p for p in checkpoints.glob("step_*") if p != final)
        for old in others[:max(len(others) - (keep - 1), 0)]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _remove_stale(run_dir: Path, checkpoints: Path) -> None:
    """Delete what killed saves left behind: hidden folders and step folders without metadata
    (never the folder ``latest`` names)."""
    named = _latest_target(run_dir)
    for folder in checkpoints.iterdir():
        stale = folder.name.startswith(".step_") or (folder.name.startswith("step_")
                                                     and not (folder / META).is_file())
        if stale and folder.is_dir() and folder.resolve() != named:
            shutil.rmtree(folder, ignore_errors=True)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint directory from itself or from a run directory (following ``latest``)."""
    path = Path(path)
    if (path / META).is_file():
        return path
    latest = path / "latest"
    if latest.is_file():
        target = path / latest.read_text(encoding="utf-8").strip()
        if not (target / META).is_file():
            raise CheckpointError(f"{latest} names {target}, which holds no {META}; the run "
                                  f"directory is damaged: point --checkpoint at a step_* folder")
        return target
    raise CheckpointError(f"{path} is neither a checkpoint (no {META}) nor a run directory "
                          f"(no 'latest' file); train one with tlib-train")


def read_meta(checkpoint_dir: Path) -> dict:
    meta_path = checkpoint_dir / META
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not UTF-8
        raise CheckpointError(f"cannot read {meta_path}: {err}") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path} holds a JSON {type(meta).__name__}, not the object "
                              f"a checkpoint's metadata is; the checkpoint is damaged")
    if not isinstance(meta.get("train_config", {}), dict):
        raise CheckpointError(f"{meta_path}: train_config is not an object; the checkpoint is "
                              f"damaged")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} has format {meta.get('format')!r}; expected {FORMAT}")
    return meta


def load_model_from_checkpoint(path: str | os.PathLike,
                               map_location: str | torch.device = "cpu"
                               ) -> tuple[Transformer, dict]:
    """The model of a checkpoint (or of a run's latest), and the checkpoint's metadata."""
    checkpoint_dir = resolve_checkpoint(path)
    meta = read_meta(checkpoint_dir)
    try:
        config = ModelConfig.from_dict(meta["model_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{checkpoint_dir / META} holds no valid model_config: {err}") from err
    model = Transformer(config)
    if meta.get("lora") is not None:
        try:
            add_lora(model, LoRAConfig.from_dict(meta["lora"]))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{checkpoint_dir / META} holds no valid lora config: "
                                  f"{err}") from err
    weights = checkpoint_dir / WEIGHTS
    try:
        missing, unexpected = load_model(model, str(weights), strict=False,
                                         device=str(map_location))
    except (OSError, SafetensorError, RuntimeError) as err:
        # torch lists every mismatched tensor on its own line: the first says enough
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if line.startswith("size mismatch")),
                      lines[0] if lines else type(err).__name__)
        more = f" (and {len(lines) - 2} more)" if detail.startswith("size mismatch") and \
            len(lines) > 2 else ""
        raise CheckpointError(f"cannot load weights {weights}: {detail}{more}; the weights do "
                              f"not match the model_config in {META}") from err
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not match its config: missing {missing}, "
                              f"unexpected {unexpected}")
    return model.to(map_location), meta


def load_training_state(checkpoint_dir: Path) -> dict:
    """The optimizer, RNG and sampler state of a checkpoint (weights-only unpickling)."""
    state_path = checkpoint_dir / STATE
    try:
        return torch.load(state_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"{state_path} is missing: this checkpoint cannot resume training "
                              f"(it may be an export with weights only)") from err
    except Exception as err:  # corrupt or truncated pickles raise many different types
        raise CheckpointError(f"cannot read training state {state_path}: {err}") from err


def load_checkpoint_and_tokenizer(path: str, device: str = "auto"):
    """(model on the device, its tokenizer, the checkpoint's meta) for a checkpoint or run dir."""
    from ..data.tokenizer import load_tokenizer
    from ..device import pick_device

    checkpoint_dir = resolve_checkpoint(path)
    model, meta = load_model_from_checkpoint(checkpoint_dir, map_location="cpu")
    tokenizer_path = checkpoint_dir / TOKENIZER
    if not tokenizer_path.is_file():
        raise CheckpointError(f"{tokenizer_path} is missing: the checkpoint has no tokenizer")
    tokenizer = load_tokenizer(tokenizer_path)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise CheckpointError(f"{tokenizer_path} has {tokenizer.vocab_size} ids but the model "
                              f"expects {model.config.vocab_size}")
    return model.to(pick_device(device)).eval(), tokenizer, meta
