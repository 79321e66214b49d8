"""IsoFLOP analysis (Hoffmann et al. 2022, Approach 2) and compute-optimal power laws.

Per FLOP budget, a robust parabola of loss in ln N locates the loss-minimising size; resampling
the budget's points gives an interval. Across budgets, N*(C) = k·C^a and D*(C) by least squares
in log-log space, optionally weighted by 1/σ² of ln N* (the recipe of Porian et al. 2024,
data/README.md §1).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import scipy.optimize


@dataclasses.dataclass(frozen=True)
class Parabola:
  """y ≈ a·x² + b·x + c and its minimum; `interior` when the minimum lies inside the sampled x."""

  a: float
  b: float
  c: float
  x_star: float
  y_star: float
  interior: bool
  x_lo: float = math.nan  # bootstrap interval of x_star
  x_hi: float = math.nan
  x_std: float = math.nan


def _quadratic(x: np.ndarray, y: np.ndarray, delta: float | None) -> np.ndarray:
  """Coefficients (a, b, c); robust to outlying points with a Huber loss of scale δ on y."""
  design = np.stack([x * x, x, np.ones_like(x)], axis=1)
  coef, *_ = np.linalg.lstsq(design, y, rcond=None)
  if delta is None:
    return coef
  res = scipy.optimize.least_squares(lambda c: design @ c - y, coef, loss="huber", f_scale=delta, method="trf")
  return res.x


def parabola(x, y, *, delta: float | None = 0.01, bootstrap: int = 0, ci: float = 0.95, seed: int = 0) -> Parabola:
  """The minimum of a (robust) parabola through (x, y), with a bootstrap interval over points.

  x is usually ln N (or ln LR, ln batch); delta is the Huber scale on y (None → least squares).
  """
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if x.shape != y.shape or len(x) < 3:
    raise ValueError(f"parabola: needs at least 3 (x, y) pairs, got {len(x)}")
  if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
    raise ValueError("parabola: every x and y must be finite")
  a, b, c = _quadratic(x, y, delta)
  x_star = -b / (2 * a) if a > 0 else math.nan
  interior = bool(a > 0 and x.min() < x_star < x.max())
  out = Parabola(a, b, c, x_star, a * x_star**2 + b * x_star + c if a > 0 else math.nan, interior)
  if not bootstrap:
    return out
  rng = np.random.default_rng(seed)
  stars = []
  for _ in range(bootstrap):
    i = rng.integers(0, len(x), len(x))
    if len(np.unique(x[i])) < 3:
      continue
    ra, rb, _ = _quadratic(x[i], y[i], delta)
    if ra > 0:
      stars.append(-rb / (2 * ra))
  if not stars:
    return out
  stars = np.asarray(stars)
  lo, hi = np.percentile(stars, [50 * (1 - ci), 50 * (1 + ci)])
  return dataclasses.replace(out, x_lo=float(lo), x_hi=float(hi), x_std=float(np.std(stars)))


def snap_budgets(flops, per_decade: int = 20) -> np.ndarray:
  """Runs of one nominal budget differ a little in counted FLOPs: snap to a 1/per_decade-decade grid."""
  flops = np.asarray(flops, np.float64)
  if np.any(~(flops > 0)):
    raise ValueError("flops: every budget must be positive")
  return 10 ** (np.round(np.log10(flops) * per_decade) / per_decade)


def minima(
  frame: pd.DataFrame,
  *,
  budget: str = "flops",
  size: str = "params",
  tokens: str = "tokens",
  loss: str = "loss",
  delta: float | None = 0.01,
  bootstrap: int = 200,
  ci: float = 0.95,
  seed: int = 0,
) -> pd.DataFrame:
  """One row per budget: N*, D* (parabolas in ln N and ln D), the loss at N*, intervals, σ of ln N*.

  Budgets whose parabola has no interior minimum are kept with interior=False; drop them before
  fitting power laws (as Porian et al. do).
  """
  missing = [c for c in (budget, size, tokens, loss) if c not in frame.columns]
  if missing:
    raise ValueError(f"isoflop: points lack column(s) {', '.join(missing)}")
  rows = []
  for c, group in frame.groupby(budget, sort=True):
    if len(group) < 3:
      continue
    ln_l = group[loss].to_numpy(np.float64)
    pn = parabola(np.log(group[size].to_numpy(np.float64)), ln_l, delta=delta, bootstrap=bootstrap, ci=ci, seed=seed)
    pt = parabola(np.log(group[tokens].to_numpy(np.float64)), ln_l, delta=delta, bootstrap=bootstrap, ci=ci, seed=seed)
    rows.append(
      {
        "flops": float(c),
        "n_star": math.exp(pn.x_star) if pn.a > 0 else math.nan,
        "n_lo": math.exp(pn.x_lo),
        "n_hi": math.exp(pn.x_hi),
        "n_star_std": pn.x_std,
        "t_star": math.exp(pt.x_star) if pt.a > 0 else math.nan,
        "t_lo": math.exp(pt.x_lo),
        "t_hi": math.exp(pt.x_hi),
        "t_star_std": pt.x_std,
        "loss_star": pn.y_star,
        "interior": pn.interior and pt.interior,
        "points": len(group),
      }
    )
  return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True)
class PowerLaw:
  """y = coef·x^exponent, fitted in log-log space; r2 of that fit."""

  exponent: float
  coef: float
  r2: float

  def __call__(self, x):
    return self.coef * np.asarray(x, np.float64) ** self.exponent


def power_law(x, y, *, sigma=None) -> PowerLaw:
  """Least squares of ln y on ln x; with `sigma` (σ of ln y) weighted by 1/σ² (Porian et al. 2024)."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if x.shape != y.shape or len(x) < 2:
    raise ValueError(f"power_law: needs at least 2 (x, y) pairs, got {len(x)}")
  if np.any(~(x > 0)) or np.any(~(y > 0)):
    raise ValueError("power_law: every x and y must be positive")
  lx, ly = np.log(x), np.log(y)
  w = np.ones_like(lx) if sigma is None else 1.0 / np.asarray(sigma, np.float64) ** 2
  if w.shape != lx.shape or np.any(~np.isfinite(w)) or np.any(w <= 0):
    raise ValueError("sigma: every value must be finite and positive")
  sw = np.sqrt(w)
  (slope, intercept), *_ = np.linalg.lstsq(np.stack([lx, np.ones_like(lx)], axis=1) * sw[:, None], ly * sw, rcond=None)
  fitted = slope * lx + intercept
  mean = np.sum(w * ly) / np.sum(w)
  r2 = 1.0 - np.sum(w * (ly - fitted) ** 2) / np.sum(w * (ly - mean) ** 2)
  return PowerLaw(float(slope), float(math.exp(intercept)), float(r2))


def compute_optimal(table: pd.DataFrame, *, weighted: bool = False) -> dict[str, PowerLaw]:
  """N*(C) and D*(C) power laws from a table of minima (columns flops, n_star, t_star[, *_std])."""
  rows = table.dropna(subset=["n_star", "t_star"])
  if "interior" in rows:
    rows = rows[rows["interior"].astype(bool)]
  return {
    "n": power_law(rows["flops"], rows["n_star"], sigma=rows["n_star_std"] if weighted else None),
    "t": power_law(rows["flops"], rows["t_star"], sigma=rows["t_star_std"] if weighted else None),
  }
