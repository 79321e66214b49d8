"""The learning-rate × batch-size grid form and wang2024's lr/bs grid (dense and MoE alike)."""

import collections
import json

import pytest
from click.testing import CliRunner

from mixlaws import cli, config, registry


def test_lr_batch_grid_crosses_every_point():
  points = [{"model.d_model": 64}, {"model.d_model": 128}]
  grid = registry.lr_batch_grid(points, [1e-3, lambda cfg: 2e-3], [8, 16, 32])
  assert len(grid) == 2 * 2 * 3
  assert grid[0] == {"model.d_model": 64, "train.lr": 1e-3, "train.batch_size": 8}
  base = config.base_config()
  cfg = registry.resolve_point(base, grid[3])  # a rule as the lr
  assert cfg.train.lr == pytest.approx(2e-3) and cfg.train.batch_size == 8
  with pytest.raises(ValueError, match="lr_batch_grid"):
    registry.lr_batch_grid(points, [], [8])


@pytest.mark.parametrize("variant, lrs, batches", [(None, 5, 5), ("tiny", 3, 3)])
def test_wang2024_has_a_full_lr_batch_grid_per_family(variant, lrs, batches):
  specs = registry.expand("wang2024", variant)
  cells = collections.defaultdict(set)
  for s in specs:
    t, m = s.config.train, s.config.model
    cells[(m.d_model, m.n_layers, s.config.moe.expansion_rate, s.config.train.tokens)].add((t.lr, t.batch_size))
  grids = {key: cell for key, cell in cells.items() if len(cell) > 1}
  families = collections.Counter(key[2] for key in grids)
  assert set(families) == {1, 8} and min(families.values()) >= 4  # ≥ 2 shapes × 2 budgets, dense and MoE
  for cell in grids.values():
    assert len(cell) == lrs * batches
    assert len({lr for lr, _ in cell}) == lrs and len({b for _, b in cell}) == batches
    ratios = sorted({lr for lr, _ in cell})
    assert ratios[-1] / ratios[0] == pytest.approx(16 if variant is None else 4)  # multiples of the size rule


def test_plan_shows_the_lr_and_batch_columns():
  res = CliRunner().invoke(cli.main, ["plan", "wang2024", "--variant", "tiny", "--format", "csv"])
  assert res.exit_code == 0, res.output
  header = res.output.splitlines()[0].split(",")
  assert header[-2:] == ["lr", "batch_size"]


def test_downstream_study_plans_its_evaluation_cost():
  specs = registry.expand("krajewski2025_downstream")
  plan = registry.load("krajewski2025_downstream").evaluation
  ratios = {round(s.counts.tokens / s.counts.params.total) for s in specs}
  assert ratios == {20, 40, 80} and max(s.counts.tokens for s in specs) <= 350e9
  assert max(s.counts.params.total for s in specs) == pytest.approx(17e9, rel=0.05)
  # Forward FLOPs: a third of what a training token costs (2·N of 6·N, plus attention), per scored token.
  expected = sum(plan.tokens() * s.counts.flops("chinchilla") / s.counts.tokens / 3 for s in specs)
  assert registry.eval_flops(specs, plan) == pytest.approx(expected, rel=1e-9)
  two_n = sum(plan.tokens() * 2 * s.counts.params.active for s in specs)
  assert two_n < registry.eval_flops(specs, plan) < 1.3 * two_n
  res = CliRunner().invoke(cli.main, ["plan", "krajewski2025_downstream", "--variant", "tiny", "--format", "json"])
  assert res.exit_code == 0, res.output
  totals = json.loads(res.output)["totals"]
  assert totals["eval_flops"] > 0 and "eval_chip_hours" in totals
