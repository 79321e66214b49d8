"""The learning-rate × batch-size grid form and wang2024's lr/bs grid (dense and MoE alike)."""

import collections

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
