"""Optimal learning rate and batch size: the Step Law (Li et al. 2025, arXiv 2503.04715).

For a grid of runs over (learning rate, batch size) at several (N, D), each (N, D) group's optimum
is the minimum of a quadratic surface of ln loss in (ln lr, ln batch), fitted to the group's
`nearest` lowest-loss runs (the surface is quadratic only near its minimum). The optima then
follow

    ln lr* = a + b·ln N + c·ln D        ln B* = d + e·ln D         (Li et al. 2025, Eq. 1-2)

fitted by least squares; a bootstrap over (N, D) groups gives means, standard deviations and
intervals. B is counted in tokens, as the authors' code converts it (sequences × 2,048). Per
family (dense E = 1 beside each MoE E), the same optima compare dense and MoE side by side
(Wang et al. 2024, PAPERS.md §3). Pure functions of DataFrames; no I/O but `load`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

COEFFICIENTS = ("lr_intercept", "lr_coefN", "lr_coefD", "bs_intercept", "bs_coefD")

# Li et al. 2025, the means of the authors' 1,000 bootstrap fits (steplaw repository,
# fitted_lr_bs_bootstrap_parameters.csv; data/README.md §5): η = 1.79·N^−0.713·D^0.307, B = 0.58·D^0.571
# with N non-embedding parameters, D and B in tokens.
PUBLISHED = {
  "li2025": {
    "lr_intercept": 0.5863,
    "lr_coefN": -0.7129,
    "lr_coefD": 0.3075,
    "bs_intercept": -0.5435,
    "bs_coefD": 0.5709,
  }
}

NEAREST = 45  # runs per group that the surface is fitted to


@dataclasses.dataclass(frozen=True)
class Surface:
  """ln L ≈ q(ln lr, ln B), a quadratic with a cross term, and its minimum."""

  coef: tuple[float, ...]  # of x², y², x·y, x, y, 1 with x = ln lr, y = ln B
  lr_star: float
  batch_star: float
  loss_star: float
  convex: bool  # a minimum exists (positive definite)
  interior: bool  # … and lies inside the sampled lr and batch ranges

  def loss(self, lr, batch) -> np.ndarray:
    """The surface's loss at (lr, batch)."""
    x, y = np.log(np.asarray(lr, np.float64)), np.log(np.asarray(batch, np.float64))
    return np.exp(np.stack([x * x, y * y, x * y, x, y, np.ones_like(x)], axis=-1) @ np.asarray(self.coef))


def surface(lr, batch, loss, *, nearest: int = NEAREST) -> Surface:
  """The quadratic surface of ln loss over the `nearest` lowest-loss runs, and its minimum."""
  lr, batch, loss = (np.asarray(v, np.float64) for v in (lr, batch, loss))
  if not (lr.shape == batch.shape == loss.shape) or len(lr) < 6:
    raise ValueError(f"steplaw: a group needs at least 6 (lr, batch, loss) runs, got {len(lr)}")
  if np.any(~(lr > 0)) or np.any(~(batch > 0)) or np.any(~(loss > 0)):
    raise ValueError("steplaw: every lr, batch and loss must be positive")
  keep = np.argsort(loss, kind="stable")[:nearest]
  x, y, z = np.log(lr[keep]), np.log(batch[keep]), np.log(loss[keep])
  design = np.stack([x * x, y * y, x * y, x, y, np.ones_like(x)], axis=1)
  coef, *_ = np.linalg.lstsq(design, z, rcond=None)
  hessian = np.array([[2 * coef[0], coef[2]], [coef[2], 2 * coef[1]]])
  convex = bool(np.all(np.linalg.eigvalsh(hessian) > 0))
  if convex:
    xs, ys = np.linalg.solve(hessian, -coef[3:5])
  else:  # no minimum: fall back on the best run
    xs, ys = x[0], y[0]
  interior = convex and np.log(lr).min() <= xs <= np.log(lr).max() and np.log(batch).min() <= ys <= np.log(batch).max()
  out = Surface(tuple(map(float, coef)), math.exp(xs), math.exp(ys), math.nan, convex, bool(interior))
  return dataclasses.replace(out, loss_star=float(out.loss(out.lr_star, out.batch_star)))


def _columns(frame: pd.DataFrame, by: Sequence[str]) -> None:
  missing = [c for c in ("lr", "batch", "loss", *by) if c not in frame.columns]
  if missing:
    raise ValueError(f"steplaw: points lack column(s) {', '.join(missing)} (map them with --map lr=…,batch=…)")
  for column in ("lr", "batch", "loss"):
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    if np.any(~(values > 0)):
      raise ValueError(f"steplaw: column {column} must hold positive numbers")


def optima(
  frame: pd.DataFrame,
  *,
  by: Sequence[str] = ("params", "tokens"),
  nearest: int = NEAREST,
  bootstrap: int = 0,
  ci: float = 0.95,
  seed: int = 0,
) -> pd.DataFrame:
  """One row per group of `by`: its surface's optimal lr and batch, the loss there, the best run's loss.

  With `bootstrap`, the group's runs are resampled and the surface refitted, giving the
  intervals lr_lo/lr_hi and batch_lo/batch_hi (at `ci`).
  """
  _columns(frame, by)
  rng = np.random.default_rng(seed)
  rows = []
  for key, group in frame.groupby(list(by), sort=True):
    if len(group) < 6:
      continue
    lr, batch, loss = (group[c].to_numpy(np.float64) for c in ("lr", "batch", "loss"))
    s = surface(lr, batch, loss, nearest=nearest)
    row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
    row.update(lr_star=s.lr_star, batch_star=s.batch_star, loss_star=s.loss_star, best_loss=float(loss.min()),
               interior=s.interior, runs=len(group))  # fmt: skip
    if bootstrap:
      stars = []
      for _ in range(bootstrap):
        i = rng.integers(0, len(group), len(group))
        r = surface(lr[i], batch[i], loss[i], nearest=nearest)
        if r.convex:
          stars.append((r.lr_star, r.batch_star))
      lo_q, hi_q = 50 * (1 - ci), 50 * (1 + ci)
      stars = np.log(np.array(stars)) if stars else np.full((1, 2), np.nan)
      (row["lr_lo"], row["batch_lo"]), (row["lr_hi"], row["batch_hi"]) = np.exp(
        np.percentile(stars, [lo_q, hi_q], axis=0)
      )
    rows.append(row)
  if not rows:
    raise ValueError(f"steplaw: no group of {', '.join(by)} has 6 or more runs")
  return pd.DataFrame(rows)


def _regress(table: pd.DataFrame) -> np.ndarray:
  """The five coefficients by least squares of ln lr* on [1, ln N, ln D] and ln B* on [1, ln D]."""
  ln_n, ln_d = np.log(table["params"].to_numpy(np.float64)), np.log(table["tokens"].to_numpy(np.float64))
  ones = np.ones_like(ln_n)
  lr, *_ = np.linalg.lstsq(np.stack([ones, ln_n, ln_d], 1), np.log(table["lr_star"].to_numpy(np.float64)), rcond=None)
  bs, *_ = np.linalg.lstsq(np.stack([ones, ln_d], 1), np.log(table["batch_star"].to_numpy(np.float64)), rcond=None)
  return np.concatenate([lr, bs])


@dataclasses.dataclass(frozen=True)
class StepLawFit:
  """The fitted Step Law: bootstrap means (or the point fit), standard deviations and replicates."""

  params: dict[str, float]  # the five coefficients: bootstrap means, or the point fit without bootstrap
  point: dict[str, float]  # the fit on every group
  std: dict[str, float] | None
  samples: list[dict[str, float]] | None
  ci: float | None
  n_groups: int
  optima: list[dict[str, Any]]  # the per-group optima the law was fitted to
  law: str = "steplaw"

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> StepLawFit:
    fields = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(data, Mapping) or set(data) - fields or "params" not in data:
      raise ValueError("not a Step Law fit (expected params, point, std, samples, …)")
    missing = [c for c in COEFFICIENTS if c not in data["params"]]
    if missing:
      raise ValueError(f"the Step Law fit lacks {', '.join(missing)}")
    return cls(**data)


def fit(
  frame: pd.DataFrame, *, nearest: int = NEAREST, bootstrap: int = 1000, ci: float = 0.95, seed: int = 0
) -> StepLawFit:
  """Per-(N, D) optima, then the Step Law by least squares, bootstrapped over the (N, D) groups."""
  if not 0 < ci < 1:
    raise ValueError(f"ci: {ci} must lie in (0, 1)")
  table = optima(frame, nearest=nearest)
  table = table[table["interior"]]
  groups = table[["params", "tokens"]].drop_duplicates()
  if len(groups) < 3 or table["tokens"].nunique() < 2 or table["params"].nunique() < 2:
    raise ValueError(
      f"steplaw: {len(groups)} (N, D) group(s) with an interior optimum; the law needs at least 3, "
      "with at least 2 values each of N and D"
    )
  point = dict(zip(COEFFICIENTS, map(float, _regress(table))))
  out = StepLawFit(point, point, None, None, None, len(table), table.to_dict("records"))
  if not bootstrap:
    return out
  rng = np.random.default_rng(seed)
  replicates = []
  while len(replicates) < bootstrap:
    sample = table.iloc[rng.integers(0, len(table), len(table))]
    if sample["params"].nunique() < 2 or sample["tokens"].nunique() < 2:
      continue  # a resample that cannot identify the slopes
    replicates.append(_regress(sample))
  values = np.array(replicates)
  return dataclasses.replace(
    out,
    params=dict(zip(COEFFICIENTS, map(float, values.mean(0)))),
    std=dict(zip(COEFFICIENTS, map(float, values.std(0)))),
    samples=[dict(zip(COEFFICIENTS, map(float, row))) for row in values],
    ci=ci,
  )


def _lr(p: Mapping[str, float], params, tokens):
  return np.exp(p["lr_intercept"] + p["lr_coefN"] * np.log(params) + p["lr_coefD"] * np.log(tokens))


def _batch(p: Mapping[str, float], tokens):
  return np.exp(p["bs_intercept"] + p["bs_coefD"] * np.log(tokens))


def predict(result: StepLawFit | Mapping[str, float], params: float, tokens: float) -> dict[str, Any]:
  """Optimal lr and batch size (tokens) at (N, D), with percentile intervals over the bootstrap replicates."""
  if not params > 0 or not tokens > 0:
    raise ValueError(f"--params and --tokens: must be positive, got {params:g} and {tokens:g}")
  coefficients = result.params if isinstance(result, StepLawFit) else result
  out: dict[str, Any] = {
    "lr": float(_lr(coefficients, params, tokens)),
    "batch_size": float(_batch(coefficients, tokens)),
    "lr_interval": None,
    "batch_size_interval": None,
  }
  if isinstance(result, StepLawFit) and result.samples:
    lrs = [_lr(s, params, tokens) for s in result.samples]
    batches = [_batch(s, tokens) for s in result.samples]
    q = [50 * (1 - result.ci), 50 * (1 + result.ci)]
    out["lr_interval"] = [float(v) for v in np.percentile(lrs, q)]
    out["batch_size_interval"] = [float(v) for v in np.percentile(batches, q)]
  return out


def held_out_gap(result: StepLawFit | Mapping[str, float], frame: pd.DataFrame, *, nearest: int = NEAREST):
  """Per group: the loss at the law's predicted (lr, batch), read from the group's surface, over its best loss − 1."""
  coefficients = result.params if isinstance(result, StepLawFit) else result
  _columns(frame, ("params", "tokens"))
  rows = []
  for (n, d), group in frame.groupby(["params", "tokens"], sort=True):
    if len(group) < 6:
      continue
    s = surface(group["lr"], group["batch"], group["loss"], nearest=nearest)
    at = float(s.loss(_lr(coefficients, n, d), _batch(coefficients, d)))
    rows.append({"params": n, "tokens": d, "loss_predicted": at, "best_loss": float(group["loss"].min()),
                 "gap": at / float(group["loss"].min()) - 1})  # fmt: skip
  return pd.DataFrame(rows)


def families(
  frame: pd.DataFrame,
  *,
  family: str = "experts",
  by: Sequence[str] = ("params", "tokens"),
  nearest: int = NEAREST,
  bootstrap: int = 200,
  ci: float = 0.95,
  seed: int = 0,
) -> pd.DataFrame:
  """Dense and MoE optima side by side (Wang et al. 2024): one row per (family, group) with intervals.

  Columns: `family`, `by`, lr_star, lr_lo, lr_hi, batch_star, batch_lo, batch_hi, loss_star,
  best_loss, interior, runs. A report can pivot it on `family`.
  """
  if family not in frame.columns:
    raise ValueError(f"steplaw: points lack the family column {family}")
  parts = []
  for name, group in frame.groupby(family, sort=True):
    table = optima(group, by=by, nearest=nearest, bootstrap=bootstrap, ci=ci, seed=seed)
    parts.append(table.assign(**{family: name}))
  out = pd.concat(parts, ignore_index=True)
  return out[[family, *[c for c in out.columns if c != family]]]
