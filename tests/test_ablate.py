"""tlib-ablate: parameter matching of the variants, and a run of the command on a tiny budget."""

import json
import os
import subprocess
import sys

import pytest

from transformer_lib.book import BOOK_VOCAB_SIZE
from transformer_lib.book import ablations as ablate
from transformer_lib.cli import ablate as ablate_cli

needs_real_data = pytest.mark.skipif(
    not os.environ.get("TINYSTORIES_PATH"),
    reason="TINYSTORIES_PATH is unset: no local copy of the book's extract")


def test_every_variant_changes_one_thing_and_is_matched():
    baseline, _ = ablate.variant_config("baseline", BOOK_VOCAB_SIZE)
    target = ablate.parameter_count(baseline)
    per_ffn_unit = 3 * baseline.d_model * baseline.num_layers  # SwiGLU: three matrices
    for name in ablate.VARIANTS:
        config, matched = ablate.variant_config(name, BOOK_VOCAB_SIZE)
        # within half a feed-forward unit of the baseline's count, lookup tables aside
        tables = (config.num_layers * config.vocab_size * config.num_kv_heads * config.head_dim
                  if config.value_embeddings else 0)
        assert abs(ablate.parameter_count(config) - tables - target) <= per_ffn_unit / 2, name
        changed = {f for f in config.to_dict() if config.to_dict()[f] != baseline.to_dict()[f]}
        model_changes = set(ablate.VARIANTS[name][0])
        assert changed - {"ffn_hidden_dim"} == model_changes, name
    gelu, matched = ablate.variant_config("gelu-mlp", BOOK_VOCAB_SIZE)
    assert matched == "equal" and gelu.ffn_hidden_dim == 3 * baseline.ffn_hidden_dim // 2
    untied, matched = ablate.variant_config("untied", BOOK_VOCAB_SIZE)
    assert untied.ffn_hidden_dim < baseline.ffn_hidden_dim and "->" in matched
    unmatched, how = ablate.variant_config("untied", BOOK_VOCAB_SIZE, match=False)
    assert how == f"+{BOOK_VOCAB_SIZE * baseline.d_model} parameters"
    tables, how = ablate.variant_config("value-embeddings", BOOK_VOCAB_SIZE)
    assert tables.ffn_hidden_dim == baseline.ffn_hidden_dim and "not matched" in how


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        ablate_cli.run_ablations(["baseline", "rmsnorm-twice"], [0], 5, 256)


@needs_real_data
def test_the_command_writes_every_seed_of_every_variant(tmp_path):
    out = tmp_path / "results.json"
    subprocess.run([sys.executable, "-m", "transformer_lib.ablate", "--out", str(out),
                    "--steps", "5", "--seeds", "2", "--variants", "baseline", "no-positions",
                    "--eval-tokens", "512", "--cache-dir", str(tmp_path / "cache")],
                   check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    results = json.loads(out.read_text())
    assert results["command"].startswith("python -m transformer_lib.ablate --out")
    assert results["torch"] and results["cpu"]
    assert len(results["data"]["validation_stories_sha256"]) == 64
    assert results["recipe"]["steps"] == 5 and results["recipe"]["train"]["warmup_steps"] == 1
    for name in ("baseline", "no-positions"):
        runs = results["variants"][name]["runs"]
        assert [run["seed"] for run in runs] == [0, 1]
        for run in runs:
            assert 0 < run["val_bpb"] < 8 and run["parameters"] > 1e6 and run["tokens_per_s"] > 0
    # different seeds give different models; the same seed the same data, so NoPE differs
    baseline = [run["val_bpb"] for run in results["variants"]["baseline"]["runs"]]
    assert baseline[0] != baseline[1]


def test_merge_joins_the_seeds_of_one_recipe(tmp_path):
    def part(seeds, steps=30):
        return {"command": f"ablate --seeds {seeds}", "torch": "2", "cpu": "x", "wall_s": 1.0,
                "recipe": {"steps": steps, "seeds": seeds}, "data": {"v": "abc"},
                "variants": {"baseline": {"runs": [{"seed": s, "val_bpb": 2.0 + s}
                                                   for s in seeds]}}}

    for index, seeds in enumerate(([0, 1], [2])):
        (tmp_path / f"{index}.json").write_text(json.dumps(part(seeds)))
    ablate_cli.main(["--out", str(tmp_path / "all.json"), "--merge", str(tmp_path / "1.json"),
                     str(tmp_path / "0.json")])
    merged = json.loads((tmp_path / "all.json").read_text())
    assert merged["recipe"]["seeds"] == [0, 1, 2]
    assert [run["seed"] for run in merged["variants"]["baseline"]["runs"]] == [0, 1, 2]
    assert [p["seeds"] for p in merged["parts"]] == [[2], [0, 1]]
    assert merged["command"].endswith("1.json " + str(tmp_path / "0.json"))  # the merge's own
    with pytest.raises(ValueError, match="recipe"):
        ablate_cli.merge_results([part([0]), part([1], steps=60)])
    with pytest.raises(ValueError, match="two files"):
        ablate_cli.merge_results([part([0]), part([0])])


def test_merge_adds_variants_swept_later_and_refuses_a_gap(tmp_path):
    def part(variants, seeds=(0, 1)):
        return {"command": "ablate", "torch": "2", "cpu": "x", "recipe": {"steps": 30,
                "seeds": list(seeds)}, "data": {"v": "abc"},
                "variants": {name: {"description": name, "runs": [
                    {"seed": s, "val_bpb": 2.0 + s} for s in seeds]} for name in variants}}

    merged = ablate_cli.merge_results([part(["baseline", "muon"]), part(["value-residual"])])
    assert list(merged["variants"]) == ["baseline", "muon", "value-residual"]
    assert [run["seed"] for run in merged["variants"]["value-residual"]["runs"]] == [0, 1]
    assert merged["variants"]["value-residual"]["description"] == "value-residual"
    with pytest.raises(ValueError, match="value-residual has seeds \\[0\\]"):
        ablate_cli.merge_results([part(["baseline"]), part(["value-residual"], seeds=[0])])
