"""WSD cooldown branches in the registry: the ludziejewski2025 plan, its recorded FLOPs ratio, ids and errors."""

import json
import pathlib

import pytest
from click.testing import CliRunner

from mixlaws import cli, config, registry
from mixlaws.bench import branching

BENCH = pathlib.Path(__file__).resolve().parents[2] / "docs" / "bench" / "branching.json"


@pytest.fixture(scope="module")
def ludziejewski():
  return registry.expand("ludziejewski2025")


def test_every_family_forks_at_its_decay_start_and_the_trunk_ends_at_the_last_fork(ludziejewski):
  summary = registry.branching_summary(ludziejewski, "ludziejewski2025")
  assert (summary["trunks"], summary["branches"], summary["points"]) == (51, 270, 270)
  by_id = {s.run_id: s for s in ludziejewski}
  for family in summary["families"]:
    trunk = by_id[family["trunk"]]
    assert trunk.counts.tokens == max(b["fork_tokens"] for b in family["branches"])
    assert trunk.lineage.fork_steps == tuple(sorted(b["fork_step"] for b in family["branches"]))
    for b in family["branches"]:
      spec = by_id[b["run_id"]]
      tokens_per_step = spec.config.train.batch_size * spec.config.model.seq_len
      # The fork is the last step boundary at or below 80% of the budget (PAPERS.md §2.6: decay over the final 20%).
      assert 0 <= 0.8 * b["tokens"] - b["fork_tokens"] < tokens_per_step
      assert b["cooldown_tokens"] == b["tokens"] - b["fork_tokens"]


def test_recorded_ratio_is_the_plans(ludziejewski):
  recorded = json.loads(BENCH.read_text())
  row = recorded["studies"][0]
  assert row["study"] == "ludziejewski2025"
  summary = registry.branching_summary(ludziejewski, "ludziejewski2025")
  assert row["ratio"] == pytest.approx(summary["ratio"], rel=1e-9) == recorded["ratio"]
  assert row["bound_without_cooldown"] == pytest.approx(branching.bound_without_cooldown(ludziejewski), rel=1e-9)
  # Appendix E's budgets per shape roughly double, so even a zero cooldown leaves max D / Σ D ≈ 0.38;
  # with the paper's 20% cooldown the ratio is 0.8·max D / Σ D + 0.2 ≈ 0.50 (issue 20's 0.35 is out of reach).
  assert row["bound_without_cooldown"] < row["ratio"] < 0.8 * row["bound_without_cooldown"] + 0.2 + 1e-3
  assert recorded["met"] == (recorded["ratio"] <= branching.TARGET)


def test_plan_shows_trunks_branches_and_the_ratio():
  result = CliRunner().invoke(cli.main, ["plan", "ludziejewski2025", "--filter", "d_model=1024,E=32"])
  assert result.exit_code == 0, result.output
  assert "trunk ludziejewski2025-d1024l16-sw32-12.8B-trunk-" in result.output
  assert "└ ludziejewski2025-d1024l16-sw32-16B-" in result.output and "fork at step" in result.output
  assert "branching: 1 trunks + 6 branches for 6 (N, D) points" in result.output and "ratio 0.60" in result.output


def _study(*overrides, cooldown=0.2, budgets=(20480, 40960)):
  base = config.apply_overrides(config.base_config(), ["model.seq_len=64", "train.batch_size=16", *overrides])
  return registry.Study("b", "", base, registry.axis("train.tokens", budgets), cooldown=cooldown)


def test_warmup_fraction_becomes_the_smallest_budgets_warmup_tokens():
  specs = registry.expand_study(_study("train.warmup_fraction=0.1"))
  assert {s.config.train.warmup_tokens for s in specs} == {2048} and {
    s.config.train.warmup_fraction for s in specs
  } == {0}
  filtered = registry.expand_study(_study("train.warmup_fraction=0.1"), filter="tokens<30000")
  assert [s.run_id for s in filtered] == [s.run_id for s in specs[:2]]  # the trunk stays, with the same id


@pytest.mark.parametrize(
  "study, message",
  [
    (
      _study("train.warmup_fraction=0", "train.warmup_tokens=30000"),
      r"^b runs \[0, 1\]: train.warmup_tokens: the warmup \(30000 tokens\) must end",
    ),
    (_study(cooldown=1.5), r"^b: cooldown must lie in \(0, 1\), got 1.5$"),
    (_study(budgets=(20480, 20480)), r"^b: runs \[0, 1\] repeat a token budget of one shape"),
  ],
)
def test_branching_errors_are_one_line(study, message):
  with pytest.raises(ValueError, match=message):
    registry.expand_study(study)
