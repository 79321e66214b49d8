"""`mixlaws next` end to end on the tiny krajewski2024 study: plan → finished runs in the store → proposal."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mixlaws import adaptive, cli, collect, registry, rundir
from mixlaws.fit import design, laws

STUDY, VARIANT = "krajewski2024", "tiny"
LAW = laws.KRAJEWSKI2024


def invoke(*args):
  return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def simulated_losses(plan):
  """Krajewski et al. 2024, Table 1 coefficients at each planned run, times 1 + 0.5% noise."""
  theta = np.array([LAW.fitting(LAW.published["table1"])[p] for p in LAW.params])
  clean = design.predict(LAW, theta, {c: plan[c].to_numpy() for c in LAW.columns})
  return clean * np.exp(np.random.default_rng(0).normal(0, 0.005, len(plan)))


def write_finished(root, spec, loss):
  """A run dir as a worker leaves it: config, one final eval loss, status done."""
  run = rundir.RunDir(root / spec.study / spec.run_id)
  run.write_config(spec.record())
  steps, tokens = spec.counts.steps, spec.counts.tokens
  run.write_metrics([{"step": steps, "tokens": tokens, "flops": 1.0, "split": "eval", "loss": float(loss)}], 0)
  run.write_status("done", step=steps)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """The 30 cheapest runs of the tiny study written as finished run dirs and collected."""
  root = tmp_path_factory.mktemp("runs")
  specs = registry.expand(STUDY, VARIANT)
  plan = adaptive.pool(specs, LAW.convention)
  loss = simulated_losses(plan)
  done = set(np.argsort(plan["flops"].to_numpy(), kind="stable")[:30])
  for i in sorted(done):
    write_finished(root, specs[i], loss[i])
  collect.collect(root, specs[0].study)
  return root, plan, done


def test_next_without_finished_runs_starts_with_the_cheapest(tmp_path):
  result = invoke("next", STUDY, "--variant", VARIANT, "--law", "krajewski2024", "--root", tmp_path, "-k", 3,
                  "--format", "json")  # fmt: skip
  assert result.exit_code == 0, result.output
  out = json.loads(result.output)
  plan = adaptive.pool(registry.expand(STUDY, VARIANT), LAW.convention)
  cheapest = plan.sort_values("flops", kind="stable")["run_id"].head(3).tolist()
  assert [r["run_id"] for r in out["runs"]] == cheapest
  assert {r["reason"] for r in out["runs"]} == {"cheapest"} and out["observed"] == 0


def test_next_proposes_unfinished_runs_that_shrink_the_target_variance(finished):
  root, plan, done = finished
  result = invoke("next", STUDY, "--variant", VARIANT, "--law", "krajewski2024", "--root", root, "-k", 4,
                  "--target", "optimal:1e21", "--budget", 1e12, "--format", "json")  # fmt: skip
  assert result.exit_code == 0, result.output
  out = json.loads(result.output)
  assert out["observed"] == 30 and out["pool"] == len(plan)
  runs = out["runs"]
  assert len(runs) == 4 and {r["reason"] for r in runs} == {"variance"}
  done_ids = set(plan["run_id"].iloc[sorted(done)])
  assert not done_ids & {r["run_id"] for r in runs}
  variance = [out["variance_now"], *(r["variance_after"] for r in runs)]
  assert all(b < a for a, b in zip(variance, variance[1:], strict=False))
  assert out["flops_chosen"] <= 1e12
  # The fit read the 30 finished losses from the store: it reproduces them to the 0.5% noise.
  rows = plan.iloc[sorted(done)]
  fitted = laws.evaluate(LAW, out["theta"], {c: rows[c].to_numpy() for c in LAW.columns})
  assert fitted == pytest.approx(simulated_losses(plan)[sorted(done)], rel=0.02)
  table = invoke("next", STUDY, "--variant", VARIANT, "--law", "krajewski2024", "--root", root, "-k", 2)
  assert table.exit_code == 0 and "target variance per FLOP" in table.output and "30 of 168 runs done" in table.output


@pytest.mark.parametrize(
  ("args", "message"),
  [
    (("--target", "best"), "--target: 'best'"),
    (("--target", "coef:zeta"), "'zeta' is not a parameter"),
    (("--target", "optimal:lots"), "needs a FLOPs number"),
    (("--law", "nope"), "law: unknown 'nope'"),
  ],
)
def test_next_rejects_bad_input_in_one_line(tmp_path, args, message):
  base = {"--law": "krajewski2024", "--target": "loss"}
  base.update(dict(zip(args[::2], args[1::2])))
  flags = [x for kv in base.items() for x in kv]
  result = invoke("next", STUDY, "--variant", VARIANT, "--root", tmp_path, *flags)
  assert result.exit_code != 0
  assert message in result.output and "Traceback" not in result.output


def test_simulate_spends_within_its_share():
  plan = adaptive.pool(registry.expand(STUDY, VARIANT), LAW.convention)
  plan = plan[plan["experts"] == 64].reset_index(drop=True)
  bought = adaptive.simulate(LAW, plan, simulated_losses(plan), "loss", share=0.1, batch=8)
  spent = plan["flops"][bought].sum() / plan["flops"].sum()
  assert 0.05 < spent <= 0.1 and bought.sum() >= 2.5 * len(LAW.params)


def test_run_adaptive_trains_rounds_until_the_budget_is_spent(tmp_path):
  specs = [s for s in registry.expand(STUDY, VARIANT) if s.config.moe.expansion_rate == 64]
  plan = adaptive.pool(specs, LAW.convention)
  loss = dict(zip(plan["run_id"], simulated_losses(plan)))
  trained = []

  def train(chosen):  # stands in for the local workers: each chosen run finishes with the law's loss
    trained.append([spec.run_id for spec in chosen])
    for spec in chosen:
      write_finished(tmp_path, spec, loss[spec.run_id])

  budget = 0.15 * plan["flops"].sum()
  rounds = adaptive.run_adaptive(specs, LAW, "loss", budget, train, str(tmp_path), k=8, echo=lambda line: None)
  assert len(trained) == rounds["round"].nunique() >= 3
  ids = [r for batch in trained for r in batch]
  assert len(ids) == len(set(ids))  # no run is trained twice
  spent = plan.set_index("run_id").loc[ids, "flops"].sum()
  assert 0.1 * plan["flops"].sum() < spent <= budget
  assert set(rounds["reason"]) == {"cheapest", "variance"}  # cheap start, then variance per FLOP


def test_run_adaptive_needs_a_budget_and_the_local_backend(tmp_path):
  result = invoke("run", STUDY, "--variant", VARIANT, "--root", tmp_path, "--adaptive")
  assert result.exit_code != 0 and "--budget: --adaptive needs a positive FLOPs budget" in result.output
  result = invoke("run", STUDY, "--variant", VARIANT, "--root", tmp_path, "--adaptive", "--budget", 1e12,
                  "--backend", "xpk")  # fmt: skip
  assert result.exit_code != 0 and "--adaptive: runs on the local backend" in result.output
