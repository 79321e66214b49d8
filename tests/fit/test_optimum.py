"""`mixlaws optimal` for every law with something to optimise, and the downstream CSV path."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
from click.testing import CliRunner

from mixlaws import cli
from mixlaws.fit import fitter, laws, optimal, study

WANG = {"A": 30.0, "alpha": 0.18, "gamma": 0.1, "B": 40.0, "beta": 0.2, "sigma": 1.4}


def test_wang_allocation_is_the_budget_minimum():
  a = optimal.wang(WANG, 1e20, 8)
  assert 6 * a.active_params * a.tokens == pytest.approx(1e20)

  def loss(ln_n):
    n = math.exp(ln_n)
    return float(
      laws.evaluate(laws.WANG2024, WANG, {"active_params": [n], "tokens": [1e20 / (6 * n)], "experts": [8]})[0]
    )

  best = scipy.optimize.minimize_scalar(loss, bounds=(10, 35), method="bounded", options={"xatol": 1e-10})
  assert a.active_params == pytest.approx(math.exp(best.x), rel=1e-4) and a.loss == pytest.approx(best.fun, rel=1e-9)
  table = study.optimum(laws.WANG2024, WANG, budget=1e20, experts=(1, 8, 32))
  assert list(table["best"]) == [False, False, True]  # γ > 0: more experts, lower loss


def test_clark_best_experts_follows_the_sign_of_b_plus_c_ln_n():
  p = {"a": -0.08, "b": -0.3, "c": 0.015, "d": 2.5, "E_start": 1.5, "E_max": 300.0}
  cutoff = math.exp(0.3 / 0.015)  # b + c·ln N = 0: routing stops helping (Clark et al. 2022)
  small = study.optimum(laws.CLARK2022, p, active_params=cutoff / 10, experts=(1, 8, 64))
  large = study.optimum(laws.CLARK2022, p, active_params=cutoff * 10, experts=(1, 8, 64))
  assert small.loc[small["best"], "experts"].item() == 64 and large.loc[large["best"], "experts"].item() == 1


def test_budget_for_a_target_roundtrips():
  compute = {"A": 50.0, "alpha": 0.1, "E": 1.7}
  c = optimal.flops_for_loss(compute, 2.0)
  assert float(laws.evaluate(laws.COMPUTE, compute, {"flops": [c]})[0]) == pytest.approx(2.0, rel=1e-10)
  with pytest.raises(ValueError, match="--target"):
    optimal.flops_for_loss(compute, 1.6)
  power = {"A": 400.0, "alpha": 0.12}
  a = optimal.downstream_flops("downstream_power", power, 0.6, chance=0.25)
  y = float(laws.evaluate(laws.DOWNSTREAM_POWER, power, {"flops": [a.flops]})[0])
  assert math.exp(-y) * 0.75 + 0.25 == pytest.approx(0.6, rel=1e-10)
  with pytest.raises(ValueError, match="ceiling"):
    optimal.downstream_flops("downstream_ceiling", {"A": 400.0, "alpha": 0.12, "E": 0.5}, 0.7)
  tpr = {"A": 300.0, "alpha": 0.3, "B": 500.0, "beta": 0.3}
  a = optimal.downstream_flops("downstream_tpr", tpr, 0.5)
  y = float(laws.evaluate(laws.DOWNSTREAM_TPR, tpr, {"params": [a.params], "tokens": [a.tokens]})[0])
  assert y == pytest.approx(-math.log(0.5), rel=1e-9) and 6 * a.params * a.tokens == pytest.approx(a.flops)
  # Any other split of the same budget falls short of the target.
  for n in (a.params / 2, a.params * 2):
    other = float(laws.evaluate(laws.DOWNSTREAM_TPR, tpr, {"params": [n], "tokens": [a.flops / (6 * n)]})[0])
    assert other > y


@pytest.fixture(scope="module")
def compute_fit():
  rng = np.random.default_rng(0)
  flops = np.geomspace(1e17, 1e21, 12)
  loss = (1.7 + 50.0 * flops**-0.1) * np.exp(rng.normal(0, 0.003, len(flops)))
  return fitter.fit(laws.COMPUTE, pd.DataFrame({"flops": flops, "loss": loss}), bootstrap=30, seed=0)


def test_intervals_come_from_the_bootstrap(compute_fit):
  table = study.optimum(laws.COMPUTE, compute_fit, target=2.0)
  row = table.iloc[0]
  assert row["flops_lo"] < row["flops"] < row["flops_hi"]
  assert table.attrs["replicates"] > 20
  assert row["flops"] == pytest.approx(optimal.flops_for_loss(compute_fit.params, 2.0))


def test_cli_optimal_lists_every_law_and_prints_intervals(compute_fit, tmp_path):
  runner = CliRunner()
  res = runner.invoke(cli.main, ["optimal", "--help"])
  text = " ".join(res.output.split())
  for name in ("chinchilla", "krajewski2024", "ludziejewski2025", "wang2024", "clark2022", "compute",
               "downstream_power", "downstream_ceiling", "downstream_tpr", "steplaw", "ludziejewski_lr", "gadre2024",
               "gadre2024_error", "muennighoff2023"):  # fmt: skip
    assert name in text, name
  path = tmp_path / "fit.json"
  path.write_text(json.dumps({"fit": compute_fit.to_dict()}))
  res = runner.invoke(cli.main, ["optimal", "--law", "compute", "--fit", str(path), "--target", "2.0"])
  assert res.exit_code == 0, res.output
  assert "flops" in res.output and "[" in res.output
  res = runner.invoke(cli.main, ["optimal", "--law", "compute", "--fit", str(path)])
  assert res.exit_code == 2 and "--target" in res.output
  res = runner.invoke(cli.main, ["optimal", "--law", "chinchilla", "--published"])
  assert res.exit_code == 2 and "--budget" in res.output


def _downstream_csv(tmp_path, accuracy):
  flops = np.geomspace(1e18, 1e22, 8)
  frame = pd.DataFrame({"C": flops, "acc": accuracy(flops)})
  path = tmp_path / "acc.csv"
  frame.to_csv(path, index=False)
  return str(path)


def test_cli_downstream_csv_takes_raw_accuracy_with_chance(tmp_path):
  runner = CliRunner()
  # Acc' = exp(−A·C^−α) with A = 400, α = 0.12, chance 0.25 (arXiv 2512.08894, Eq. 2).
  path = _downstream_csv(tmp_path, lambda c: 0.25 + 0.75 * np.exp(-400.0 * c**-0.12))
  res = runner.invoke(cli.main, ["fit", "--law", "downstream_power", "--csv", path, "--map", "C=C,acc=acc",
                                 "--chance", "0.25"])  # fmt: skip
  assert res.exit_code == 0, res.output
  alpha = next(line for line in res.output.splitlines() if " alpha " in line)
  assert float(alpha.replace("│", " ").split()[1]) == pytest.approx(0.12, rel=1e-4)
  # Raw accuracy mapped as −ln Acc is the silent α = −0.2 mistake: refused, naming the column.
  res = runner.invoke(cli.main, ["fit", "--law", "downstream_power", "--csv", path, "--map",
                                 "C=C,neg_log_accuracy=acc"])  # fmt: skip
  assert res.exit_code == 2 and "column acc" in res.output and "accuracy=acc" in res.output
  assert len(res.output.strip().splitlines()) == 1
  # Accuracy as a percentage does not look like accuracy.
  percent = _downstream_csv(tmp_path, lambda c: 100 * (0.25 + 0.75 * np.exp(-400.0 * c**-0.12)))
  res = runner.invoke(cli.main, ["fit", "--law", "downstream_power", "--csv", percent, "--map", "C=C,acc=acc"])
  assert res.exit_code == 2 and "column acc" in res.output and len(res.output.strip().splitlines()) == 1
  # An error rate (1 − accuracy) falls with compute: refused too.
  errors = _downstream_csv(tmp_path, lambda c: 0.75 * (1 - np.exp(-400.0 * c**-0.12)))
  res = runner.invoke(cli.main, ["fit", "--law", "downstream_power", "--csv", errors, "--map", "C=C,acc=acc"])
  assert res.exit_code == 2 and "column acc: falls" in res.output
