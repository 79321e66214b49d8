"""The science benchmark's recorded verdicts follow from its recorded runs (docs/bench/science.json)."""

import copy
import json
import pathlib

import pytest

from mixlaws.bench import science

RECORD = pathlib.Path(__file__).resolve().parents[2] / "docs" / "bench" / "science.json"


@pytest.fixture(name="record", scope="module")
def record_fixture():
  return json.loads(RECORD.read_text())


def test_recorded_verdicts_match_the_recorded_runs(record):
  recorded = {row["id"]: row["verdict"] for row in record["findings"]}
  assert recorded == science.verdicts(record)
  assert set(recorded) == {"F1", "F2", "F3", "F4", "F5"}


def test_recorded_effects_are_the_paired_seed_differences(record):
  for row in record["findings"]:
    for name, effect in row["effects"].items():
      if "diffs" in effect and effect["diffs"]:
        assert effect["mean"] == pytest.approx(sum(effect["diffs"]) / len(effect["diffs"]), abs=1e-12), name


def _runs(losses):
  """Synthetic runs: {config: [loss of seed 0, 1, 2]} at the judged budget."""
  return [{"config": c, "tokens": science.BUDGETS[1], "seed": s, "eval_loss": v, "seconds": 1, "dropped_frac": 0}
          for c, vs in losses.items() for s, v in enumerate(vs)]  # fmt: skip


def test_verdicts_turn_with_the_numbers():
  good = {"dense": [2.30, 2.35, 2.28], "tc_E2": [2.25, 2.31, 2.24], "tc_E4": [2.21, 2.27, 2.20],
          "tc_E8": [2.18, 2.24, 2.16], "tc_E16": [2.16, 2.22, 2.14], "ec_E8": [2.20, 2.26, 2.19],
          "mot_E16": [2.27, 2.33, 2.25]}  # fmt: skip
  verdict = {row["id"]: row["verdict"] for row in science.findings(_runs(good))}
  assert verdict["F1"] == verdict["F2"] == verdict["F4"] == "pass"
  bad = copy.deepcopy(good)
  bad["ec_E8"] = [2.31, 2.34, 2.30]  # expert choice no better than dense on one seed: F1 fails
  bad["tc_E4"] = [2.26, 2.32, 2.25]  # E=4 above E=2: not monotone
  verdict = {row["id"]: row["verdict"] for row in science.findings(_runs(bad))}
  assert verdict["F1"] == verdict["F2"] == "fail"
  two_seeds = [r for r in _runs(good) if r["seed"] < 2]
  assert {row["id"]: row["verdict"] for row in science.findings(two_seeds)}["F1"] == "not measured"


def test_krajewski_predicts_granularity_helps_at_our_shape():
  # Krajewski et al. 2024 Table 1 (MoE): g = 2.1, γ = 0.58, α = 0.115; N = 48²·(8·8+4)·2 = 313,344.
  assert science.krajewski_g_effect(2) == pytest.approx(2.1 * (2**-0.58 - 1) / 313_344**0.115)
  assert science.krajewski_g_effect(4) < science.krajewski_g_effect(2) < 0
