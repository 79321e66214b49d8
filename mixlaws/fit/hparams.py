"""Hyperparameter scaling: each group's optimal learning rate or batch size, and power laws of the optima.

For a grid of runs over one hyperparameter (e.g. the learning rate) at several model sizes or
budgets, each group's optimum is the minimum of a robust parabola of loss in ln(hyperparameter),
with a bootstrap interval (as for isoFLOP minima). The optima then follow power laws in compute,
parameters or loss (Wang et al. 2024, PAPERS.md §3: B_opt ≈ λ_B/L^α_B, η_opt ≈ λ_η·L^α_η), fitted
per family so that dense and MoE are compared side by side. Ludziejewski et al. 2025's Eq. 8 is
given as a predictor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mixlaws.fit import isoflop

# Ludziejewski et al. 2025, Eq. 8, with the reference code's unrounded defaults (PAPERS.md §2.6).
EQ8_INTERCEPT = 8.391640956234012
EQ8_PARAMS = -0.8122
EQ8_EXPERTS = -0.25000000000000533


def ludziejewski_lr(active_params: float, experts: float) -> float:
  """LR(N, E) = exp(8.39 − 0.81·ln N − 0.25·ln E) (Ludziejewski et al. 2025, Eq. 8).

  N counts active parameters *with* embeddings (attention + active FFN + vocab·d + seq_len·d +
  head), as the authors' `calculate_auto_lr` does and their LR grids were centred on.
  """
  if active_params <= 0 or experts < 1:
    raise ValueError(f"ludziejewski_lr: needs active_params > 0 and experts ≥ 1, got {active_params}, {experts}")
  return math.exp(EQ8_INTERCEPT + EQ8_PARAMS * math.log(active_params) + EQ8_EXPERTS * math.log(experts))


def optima(
  frame: pd.DataFrame,
  *,
  knob: str = "lr",
  by: Sequence[str] = ("params",),
  loss: str = "loss",
  delta: float | None = 0.01,
  bootstrap: int = 200,
  ci: float = 0.95,
  seed: int = 0,
) -> pd.DataFrame:
  """One row per group of `by`: the optimal `knob` (parabola in ln knob), its interval and loss.

  Every other column that is constant within a group (e.g. flops, experts) is carried along, so
  the optima can be regressed on it.
  """
  missing = [c for c in (knob, loss, *by) if c not in frame.columns]
  if missing:
    raise ValueError(f"hparams: points lack column(s) {', '.join(missing)}")
  if np.any(~(frame[knob].to_numpy(np.float64) > 0)):
    raise ValueError(f"{knob}: every value must be positive")
  rows = []
  for _, group in frame.groupby(list(by), sort=True):
    if group[knob].nunique() < 3:
      continue
    p = isoflop.parabola(
      np.log(group[knob].to_numpy(np.float64)),
      group[loss].to_numpy(np.float64),
      delta=delta,
      bootstrap=bootstrap,
      ci=ci,
      seed=seed,
    )
    row = {c: group[c].iloc[0] for c in group.columns if c not in (knob, loss) and group[c].nunique() == 1}
    row.update(
      {
        f"{knob}_star": math.exp(p.x_star) if p.a > 0 else math.nan,
        f"{knob}_lo": math.exp(p.x_lo),
        f"{knob}_hi": math.exp(p.x_hi),
        f"{knob}_std": p.x_std,  # σ of ln knob*
        "loss_star": p.y_star,
        "interior": p.interior,
      }
    )
    rows.append(row)
  return pd.DataFrame(rows)


def scaling(
  table: pd.DataFrame,
  *,
  knob: str = "lr",
  against: str = "flops",
  family: str | None = "experts",
  weighted: bool = False,
) -> dict[object, isoflop.PowerLaw]:
  """knob*(x) = k·x^a per family (e.g. dense E = 1 beside each MoE E), over interior optima only."""
  rows = table[table["interior"].astype(bool)].dropna(subset=[f"{knob}_star"])
  if against not in rows.columns:
    raise ValueError(f"against: the optima have no column {against!r}")
  groups = rows.groupby(family) if family else [(None, rows)]
  out = {}
  for name, g in groups:
    if len(g) >= 2:
      sigma = g[f"{knob}_std"] if weighted else None
      out[name] = isoflop.power_law(g[against], g[f"{knob}_star"], sigma=sigma)
  return out
