"""Fits on published run data must land on the authors' numbers (oracles and tolerances: data/README.md)."""

import json
import math
import pathlib

import numpy as np
import pandas as pd
import pytest
import scipy.optimize

from mixlaws.fit import fitter, isoflop, laws

DATA = pathlib.Path(__file__).parent / "data"


# --- Porian et al. 2024 ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def porian():
  pairs = pd.read_csv(DATA / "porian" / "optimal_pairs.csv").dropna()  # 4 rows have no interior minimum
  results = json.loads((DATA / "porian" / "fit_results.json").read_text())
  groups = {}
  for key in results:
    source, config = key.split("::")
    groups[key] = pairs[(pairs.source_file == source) & (pairs.config == config)]
  assert len(groups) == 15
  return groups, results


def test_porian_compute_optimal_exponents_every_configuration(porian):
  groups, results = porian
  for key, g in groups.items():
    published = results[key]
    for column, sigma, name in (("n_star", "n_star_std", "n_exponent"), ("t_star", "t_star_std", "t_exponent")):
      basic = isoflop.power_law(g.flops, g[column])
      weighted = isoflop.power_law(g.flops, g[column], sigma=g[sigma])
      assert abs(basic.exponent - published["basic"][name]) <= 1e-4, (key, name)
      assert abs(weighted.exponent - published["weighted"][name]) <= 1e-4, (key, name)
    # the paper's headline a: the weighted exponent to 3 significant digits
    headline = isoflop.power_law(g.flops, g.n_star, sigma=g.n_star_std).exponent
    assert f"{headline:.3g}" == f"{published['bs_median_weighted']['n_exponent']:.3g}", key


# Porian's Kaplan-adjusted configuration: the published loss law is not the optimum of its own
# least-squares objective (ours is lower by 3e-6 relative along a flat direction in E; the authors'
# curve_fit stops at ftol = 1e-6), so only the objective and a looser match are checked there.
FLAT = "summary_df_kaplan_tuned_hparams::rw|tuned|long|const|kaplan|train"


def test_porian_saturating_loss_law(porian):
  groups, results = porian
  for key, g in groups.items():
    points = g[(g.flops > 1e16) & (g.flops < 5e17)].rename(columns={"loss_star": "loss"})
    # analysis.py::fit_loss_with_saturation: least squares of ln L* from the 120-start grid
    result = fitter.fit(laws.COMPUTE, points, delta=None)
    published = {k: results[key]["basic"][k] for k in ("A", "E", "alpha")}
    if key == FLAT:
      assert result.objective < fitter.objective(laws.COMPUTE, published, points, delta=None)
      for name in ("E", "alpha", "A"):
        assert result.params[name] == pytest.approx(published[name], rel=0.02), name
      continue
    assert result.params["E"] == pytest.approx(published["E"], rel=1e-3), key
    assert result.params["alpha"] == pytest.approx(published["alpha"], rel=1e-3), key
    assert result.params["A"] == pytest.approx(published["A"], rel=1e-2), key


def test_porian_isoflop_minima_on_tuned_configurations(porian):
  _, results = porian
  points = pd.read_csv(DATA / "porian" / "isoflop_points.csv").rename(columns={"n": "params", "t": "tokens"})
  for (source, config), g in points.groupby(["source_file", "config"]):
    table = isoflop.minima(g, bootstrap=0)
    assert table["interior"].sum() >= len(table) - 1
    exponent = isoflop.compute_optimal(table)["n"].exponent
    # data/README.md: a naive parabola refit is only loosely comparable (0.514 against 0.497)
    assert exponent == pytest.approx(results[f"{source}::{config}"]["bs_median_weighted"]["n_exponent"], abs=0.02)


# --- OLMo ladder (Bhagia et al. 2024) --------------------------------------------------------

OLMO_GRID = {  # data/README.md: a 3^5 grid that reaches the published optimum
  "log_A": (0.0, 3.0, 6.0),
  "alpha": (0.1, 0.3, 0.5),
  "log_B": (0.0, 3.0, 6.0),
  "beta": (0.1, 0.3, 0.5),
  "log_E": tuple(np.log([0.5, 1.0, 1.5])),
}
# task → (13B-5T published prediction, objective of the published fit, 7B-4T prediction or None)
OLMO = {
  "c4": (2.3443873, 3.2999e-5, 2.433728),
  "hellaswag_val_5shot": (0.6531766, 3.4531e-5, 0.671263),
  "piqa_val_5shot": (0.8747949, 4.2687e-5, 0.890325),
  "mmlu_avg_test_5shot": (0.7501562, 6.6526e-5, 0.786944),
}


def olmo_points(task):
  frame = pd.read_csv(DATA / "olmo-ladder" / f"derived_step1_{task}_points.csv")
  frame = frame.rename(columns={"N": "params", "D": "tokens", "metric_last5_mean": "loss"})
  return frame[frame["mode"] == "train"], frame[frame["mode"] == "eval"].set_index("model")


@pytest.fixture(scope="module")
def olmo_c4():
  train, targets = olmo_points("c4")
  return train, targets, fitter.fit(laws.CHINCHILLA, train, init=OLMO_GRID)


def test_olmo_predictions_match_the_published_digits(olmo_c4):
  published = pd.read_csv(DATA / "olmo-ladder" / "step1_main.csv").set_index("Task")["Pred"]
  c4_published = pd.read_csv(DATA / "olmo-ladder" / "step1_c4_main.csv")["Pred"].iloc[0]
  for task, (pred_13b, objective, pred_7b) in OLMO.items():
    train, targets, result = olmo_c4 if task == "c4" else (*olmo_points(task), None)
    result = result or fitter.fit(laws.CHINCHILLA, train, init=OLMO_GRID)
    assert result.objective <= objective + 1e-9, task
    predicted = fitter.predict(laws.CHINCHILLA, result, targets)
    assert predicted[list(targets.index).index("13B-5T")] == pytest.approx(pred_13b, abs=1e-4), task
    assert predicted[list(targets.index).index("7B-4T")] == pytest.approx(pred_7b, abs=1e-4), task
    assert pred_13b == pytest.approx(c4_published if task == "c4" else published[task], abs=1e-7)


def test_olmo_c4_coefficients(olmo_c4):
  _, _, result = olmo_c4
  assert result.objective == pytest.approx(3.2999e-5, rel=1e-4)
  expected = {"A": 12.48, "alpha": 0.10360, "B": 33.48, "beta": 0.16197, "E": 0.93438}
  for name in ("alpha", "beta", "E"):
    assert result.params[name] == pytest.approx(expected[name], rel=1e-3)
  assert result.stop in ("gtol", "float64 floor")


POOR_START = np.array([[3.0, 0.1, 6.0, 0.2, 0.0]])  # data/README.md p0 = [a, b, α, β, E] = [3, 6, 0.1, 0.2, 1]


def test_poor_start_reaches_the_grid_optimum_not_the_early_stop(olmo_c4):
  train, targets, grid = olmo_c4
  # The trap is real on this data: scipy's default tolerances stop early, at 5.57e-5.
  problem_value = lambda x: fitter.objective(
    laws.CHINCHILLA, laws.CHINCHILLA.natural(dict(zip(laws.CHINCHILLA.params, x))), train
  )  # noqa: E731
  early = scipy.optimize.minimize(problem_value, POOR_START[0], method="L-BFGS-B")
  assert early.fun > 5e-5
  for method in ("jax", "scipy"):
    result = fitter.fit(laws.CHINCHILLA, train, init=POOR_START, method=method)
    assert result.objective == pytest.approx(grid.objective, rel=1e-9), method
    assert fitter.predict(laws.CHINCHILLA, result, targets.loc[["13B-5T"]])[0] == pytest.approx(2.3443873, abs=1e-4)


def test_vectorised_and_scipy_paths_reach_the_same_objective(porian):
  # (The poor-start test above holds both paths to the Chinchilla-form optimum of the OLMo ladder.)
  groups, _ = porian
  tuned = groups["summary_df::rw|tuned|short|const|standard|val"].rename(columns={"loss_star": "loss"})
  starts = laws.COMPUTE.grid()[5::20]  # 6 of Porian et al.'s 120
  for delta in (1e-3, None):  # Huber and least squares
    vectorised = fitter.fit(laws.COMPUTE, tuned, init=starts, delta=delta)
    reference = fitter.fit(laws.COMPUTE, tuned, init=starts, delta=delta, method="scipy")
    assert vectorised.objective == pytest.approx(reference.objective, rel=1e-9), delta
    assert vectorised.method == "jax" and reference.method == "scipy"


# --- Gadre et al. 2024 -----------------------------------------------------------------------

SMALL = ["d=96_l=8_h=4", "d=512_l=8_h=4", "d=576_l=24_h=8", "d=1024_l=24_h=8"]


def gadre_points(models, dataset):
  g = models[models.dataset_name == dataset]
  loss_rows = g[(g.model_name.isin(SMALL) & (g.tok_mult == 20)) | ((g.model_name == SMALL[0]) & (g.tok_mult == 320))]
  error_rows = pd.concat([loss_rows, g[(g.model_name == "open_lm_1b") & (g.tok_mult == 20)]])
  return g, loss_rows, error_rows


def as_points(rows, error=None):
  out = pd.DataFrame({"params": rows.N, "tokens": rows.D, "loss": rows.loss_c4_val})
  if error:
    out["error"] = rows[error]
  return out


def agree_to_4_digits(value, printed):
  """Within half a unit of the 4th significant digit of the printed value."""
  return abs(value - printed) <= 0.5 * 10 ** (math.floor(math.log10(abs(printed))) - 3) * (1 + 1e-9)


@pytest.fixture(scope="module")
def gadre():
  return pd.read_csv(DATA / "gadre" / "models_flat.csv")


@pytest.mark.parametrize("dataset", ["rpj", "c4_original", "rw_original"])
def test_gadre_loss_and_error_laws(gadre, dataset):
  _, loss_rows, error_rows = gadre_points(gadre, dataset)
  result = fitter.fit(laws.GADRE2024, as_points(loss_rows))
  for name, value in laws.GADRE2024.published[dataset].items():
    assert agree_to_4_digits(result.params[name], value), name
  for average in ("avg_subset", "avg"):
    errors = fitter.fit(laws.GADRE2024_ERROR, as_points(error_rows, f"err_{average}"))
    for name, value in laws.GADRE2024_ERROR.published[f"{dataset}_{average}"].items():
      assert agree_to_4_digits(errors.params[name], value), (average, name)


def test_gadre_held_out_predictions(gadre):
  models, loss_rows, error_rows = gadre_points(gadre, "rpj")
  loss_fit = fitter.fit(laws.GADRE2024, as_points(loss_rows))
  error_fit = fitter.fit(laws.GADRE2024_ERROR, as_points(error_rows, "err_avg_subset"))
  authors = json.loads((DATA / "gadre" / "authors_code_fits.json").read_text())["targets_rpj_avg_subset"]
  expected = {  # data/README.md §3: predicted loss, its relative error (%), predicted 17-task error, its relative error (%)
    "open_lm_1b": (2.519827, 0.7103, 0.492496, 3.6365),
    "open_lm_7b": (2.442745, 0.7320, 0.471856, 0.0464),
  }
  for target in authors:
    row = models[(models.model_name == target["model"]) & (models.tok_mult == target["M"])]
    loss = fitter.predict(laws.GADRE2024, loss_fit, as_points(row))[0]
    error = fitter.predict(laws.GADRE2024_ERROR, error_fit, {"loss": [loss]})[0]
    pred_loss, loss_rel, pred_error, error_rel = expected[target["model"]]
    assert loss == pytest.approx(pred_loss, abs=1e-5)
    assert loss == pytest.approx(target["loss_pred"], abs=1e-5)
    assert 100 * abs(loss - row.loss_c4_val.iloc[0]) / row.loss_c4_val.iloc[0] == pytest.approx(loss_rel, abs=1e-3)
    assert error == pytest.approx(pred_error, abs=1e-5)
    actual = row.err_avg_subset.iloc[0]
    assert 100 * abs(error - actual) / actual == pytest.approx(error_rel, abs=1e-3)


# --- Muennighoff et al. 2023 -----------------------------------------------------------------

MUENNIGHOFF = laws.MUENNIGHOFF2023.published["c4"]


@pytest.fixture(scope="module")
def datablations():
  frame = pd.read_csv(DATA / "muennighoff" / "fit_selection_182.csv")
  return frame.rename(
    columns={"params_N": "params", "tokens_D": "tokens", "unique_tokens_U": "unique_tokens", "val_loss": "loss"}
  )


def test_muennighoff_formula_and_goodness_of_fit(datablations):
  law = laws.MUENNIGHOFF2023
  columns = {"params": [6.34e9, 8.67e9], "tokens": [242e9, 178e9], "unique_tokens": [25e9, 25e9]}
  np.testing.assert_allclose(
    laws.evaluate(law, MUENNIGHOFF, columns), [2.2256440889984477, 2.2269634075087867], rtol=1e-12
  )
  predicted = fitter.predict(law, MUENNIGHOFF, datablations)
  y = datablations.loss.to_numpy()
  assert 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2) == pytest.approx(0.7722046, abs=1e-6)
  assert fitter.objective(law, MUENNIGHOFF, datablations) == pytest.approx(0.015825935, rel=1e-7)


def test_muennighoff_repetition_constants(datablations):
  law = laws.MUENNIGHOFF2023
  fixed = {k: v for k, v in law.fitting(MUENNIGHOFF).items() if k not in ("log_R_D", "log_R_N")}
  # the notebook's starts R_D*, R_N* ∈ linspace(0, 20, 4), without the NaN-producing 0
  result = fitter.fit(law, datablations, fixed=fixed)
  assert result.objective <= 0.0158260
  # The published constants are a local optimum (objective 0.015825932 at R_D* = 15.372, R_N* =
  # 5.315); the same starts also reach a lower one at larger R_D*, which the notebook did not report.
  optima = [law.natural({**fixed, **theta}) for theta in [result.theta, *result.alternatives]]
  local = [p for p in optima if abs(p["R_D"] / 15.387756 - 1) < 5e-3 and abs(p["R_N"] / 5.309743 - 1) < 5e-3]
  assert local, optima
  assert fitter.objective(law, local[0], datablations) == pytest.approx(0.015825932, rel=1e-8)
  assert math.isfinite(result.grad_max) and result.grad_max < 1e-6
