"""Figures for a study: loss curves, isoFLOP profiles, fitted laws, residuals, compute-optimal allocation.

Each function takes data frames (and fits) and writes `<out_dir>/<name>.png` and `.svg`; it reads
no store and fits nothing itself. Axes carry units and log scales; fitted curves are drawn over
the observed points, solid where the data reach and dashed beyond them (extrapolation), with a
dotted line at the edge of the data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

KINDS = ("curves", "isoflop", "fit", "residuals", "optimal")

LABELS = {
  "params": "parameters N",
  "active_params": "active parameters N_act",
  "tokens": "training tokens D",
  "flops": "training compute C (FLOPs)",
  "experts": "experts E",
  "granularity": "granularity G",
  "unique_tokens": "unique tokens U",
  "loss": "loss (nats/token)",
  "step": "step",
  "lr": "learning rate",
}


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")  # files only; no display needed
  import matplotlib.pyplot as plt

  return plt


def save(fig, out_dir: str, name: str) -> list[str]:
  """Writes the figure as PNG and SVG; returns both paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for ext in ("png", "svg"):
    path = os.path.join(out_dir, f"{name}.{ext}")
    fig.savefig(path, dpi=150, bbox_inches="tight")
    paths.append(path)
  _pyplot().close(fig)
  return paths


def _extrapolated(ax, x: np.ndarray, y: np.ndarray, edge: float, **style) -> None:
  """Solid up to `edge` (the data's reach), dashed beyond; x ascending."""
  inside = x <= edge
  (line,) = ax.plot(x[inside], y[inside], "-", **style)
  start = max(int(inside.sum()) - 1, 0)  # the dashed part starts at the last solid point
  style.pop("label", None)
  style.pop("color", None)
  ax.plot(x[start:], y[start:], "--", color=line.get_color(), **style)


def curves(frame: pd.DataFrame, out_dir: str, *, x: str = "tokens", name: str = "curves", title: str = "") -> list[str]:
  """Loss against tokens (or flops, step) per run, from a long frame run_id, x, value."""
  missing = [c for c in ("run_id", x, "value") if c not in frame.columns]
  if missing:
    raise ValueError(f"curves: the frame lacks column(s) {', '.join(missing)}")
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for run_id, g in frame.groupby("run_id", sort=True):
    g = g[(g[x] > 0) & (g["value"] > 0)]
    ax.plot(g[x], g["value"], lw=1, label=str(run_id))
  ax.set(xscale="log", yscale="log", xlabel=LABELS.get(x, x), ylabel=LABELS["loss"], title=title or "loss curves")
  if frame["run_id"].nunique() <= 12:
    ax.legend(fontsize=6)
  ax.grid(True, which="both", alpha=0.3)
  return save(fig, out_dir, name)


def isoflop(
  points: pd.DataFrame, minima: pd.DataFrame, out_dir: str, *, name: str = "isoflop", size: str = "params"
) -> list[str]:
  """Loss against N per FLOP budget with the fitted parabolas and minima (left); N*(C) (right)."""
  from mixlaws.fit import isoflop as isoflop_lib

  plt = _pyplot()
  fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
  colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(minima), 1)))
  for color, (_, row) in zip(colors, minima.iterrows()):
    g = points[points["flops"] == row["flops"]]
    left.plot(g[size], g["loss"], "o", color=color, ms=4, label=f"C = {row['flops']:.2g}")
    x = np.log(g[size].to_numpy(np.float64))
    p = isoflop_lib.parabola(x, g["loss"].to_numpy(np.float64), bootstrap=0)
    grid = np.linspace(x.min(), x.max(), 100)
    left.plot(np.exp(grid), p.a * grid**2 + p.b * grid + p.c, "-", color=color, lw=1)
    if row["interior"]:
      left.errorbar(
        row["n_star"], row["loss_star"], xerr=[[row["n_star"] - row["n_lo"]], [row["n_hi"] - row["n_star"]]],
        fmt="*", color=color, ms=10, capsize=3,
      )  # fmt: skip
  left.set(xscale="log", xlabel=LABELS.get(size, size), ylabel=LABELS["loss"], title="isoFLOP profiles")
  left.legend(fontsize=7)
  interior = minima[minima["interior"].astype(bool)]
  if len(interior) >= 2:
    law = isoflop_lib.compute_optimal(interior)["n"]
    right.errorbar(
      interior["flops"], interior["n_star"],
      yerr=[interior["n_star"] - interior["n_lo"], interior["n_hi"] - interior["n_star"]], fmt="o", capsize=3,
      label="minima (95% bootstrap)",
    )  # fmt: skip
    c = np.geomspace(interior["flops"].min(), interior["flops"].max() * 100, 100)
    _extrapolated(right, c, law(c), interior["flops"].max(), label=f"N* ∝ C^{law.exponent:.3f}")
    right.axvline(interior["flops"].max(), ls=":", color="grey")
    right.legend(fontsize=8)
  right.set(xscale="log", yscale="log", xlabel=LABELS["flops"], ylabel="compute-optimal " + LABELS.get(size, size))
  for ax in (left, right):
    ax.grid(True, which="both", alpha=0.3)
  return save(fig, out_dir, name)


def _axes(law, points: pd.DataFrame, x: str | None) -> tuple[str, str | None]:
  """(x column, group column): group by the discrete column with the fewest values (≥ 2 points each)."""
  candidates = [
    c for c in law.columns if c != x and 2 <= points[c].nunique() <= 8 and len(points) >= 2 * points[c].nunique()
  ]
  group = min(candidates, key=lambda c: points[c].nunique()) if candidates else None
  if x is None:
    x = next(c for c in law.columns if c != group)
  return x, group


def fit(
  law, result, points: pd.DataFrame, out_dir: str, *, x: str | None = None, name: str = "fit", extrapolate: float = 10.0
) -> list[str]:
  """Observed points and the fitted law against `x`, one curve per group of a discrete column.

  Columns other than x and the group column scale with x at the group's median ratio to x (for
  Chinchilla-form laws: curves at a fixed tokens-per-parameter ratio).
  """
  from mixlaws.fit import fitter

  x, group = _axes(law, points, x)
  target = result.options.get("target", law.target)
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  groups = points.groupby(group, sort=True) if group else [(None, points)]
  colors = plt.cm.plasma(np.linspace(0, 0.85, len(groups)))
  for color, (value, g) in zip(colors, groups):
    label = f"{LABELS.get(group, group).split()[-1]} = {value:.3g}" if group else "observed"
    ax.plot(g[x], g[target], "o", color=color, ms=4, label=label)
    grid = np.geomspace(g[x].min(), g[x].max() * extrapolate, 120)
    cols = {x: grid}
    for c in law.columns:
      if c == x:
        continue
      cols[c] = np.full_like(grid, value) if c == group else grid * np.median(g[c] / g[x])
    _extrapolated(ax, grid, fitter.predict(law, result, cols), g[x].max(), color=color, lw=1.2)
  ax.axvline(points[x].max(), ls=":", color="grey", label="edge of the data")
  ax.set(xscale="log", yscale="log", xlabel=LABELS.get(x, x), ylabel=LABELS.get(target, target))
  ax.set_title(f"{law.name}: fitted (solid), extrapolated (dashed)")
  ax.legend(fontsize=7)
  ax.grid(True, which="both", alpha=0.3)
  return save(fig, out_dir, name)


def residuals(
  law, result, points: pd.DataFrame, out_dir: str, *, x: str | None = None, name: str = "residuals"
) -> list[str]:
  """ln y − ln ŷ (or y − ŷ for linear-residual laws) against x, with the Huber δ band."""
  from mixlaws.fit import fitter

  x = x or law.columns[0]
  target = result.options.get("target", law.target)
  predicted = fitter.predict(law, result, points)
  log = result.options.get("residual", law.residual) == "log"
  r = np.log(points[target].to_numpy()) - np.log(predicted) if log else points[target].to_numpy() - predicted
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4))
  ax.plot(points[x], r, "o", ms=4)
  ax.axhline(0.0, color="black", lw=0.8)
  delta = result.options.get("delta")
  if delta:
    ax.axhspan(-delta, delta, color="grey", alpha=0.2, label=f"Huber δ = {delta:g}")
    ax.legend(fontsize=8)
  ylabel = f"ln {target} − ln fit" if log else f"{target} − fit"
  ax.set(
    xscale="log",
    xlabel=LABELS.get(x, x),
    ylabel=ylabel,
    title=f"{law.name} residuals (RMSE {np.sqrt(np.mean(r**2)):.2g})",
  )
  ax.grid(True, which="both", alpha=0.3)
  return save(fig, out_dir, name)


def optimal(
  table: pd.DataFrame, out_dir: str, *, observed_flops: float | None = None, name: str = "optimal", title: str = ""
) -> list[str]:
  """Compute-optimal N*, D* (and E or G where they vary) against the FLOPs budget."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  c = table["flops"].to_numpy(np.float64)
  edge = observed_flops if observed_flops is not None else c.max()
  for column, label in (("params", "N*"), ("active_params", "N_act*"), ("tokens", "D*")):
    if column in table and not (column == "active_params" and np.allclose(table["active_params"], table["params"])):
      _extrapolated(ax, c, table[column].to_numpy(np.float64), edge, label=label, lw=1.5)
  for column in ("granularity", "experts"):
    if column in table and table[column].nunique() > 1:
      for ci, value, y in zip(c, table[column], table["params"]):
        ax.annotate(f"{column[0].upper()}={value:g}", (ci, y), fontsize=6, textcoords="offset points", xytext=(0, 5))
  if observed_flops is not None:
    ax.axvline(observed_flops, ls=":", color="grey", label="largest observed run")
  ax.set(
    xscale="log",
    yscale="log",
    xlabel=LABELS["flops"],
    ylabel="parameters / tokens",
    title=title or "compute-optimal allocation",
  )
  ax.legend(fontsize=8)
  ax.grid(True, which="both", alpha=0.3)
  return save(fig, out_dir, name)


def allocation_table(allocations: Sequence) -> pd.DataFrame:
  """Rows of `mixlaws.fit.optimal.Allocation` as a frame for `optimal`."""
  import dataclasses

  return pd.DataFrame([dataclasses.asdict(a) for a in allocations])


def budgets(low: float, high: float, per_decade: int = 4) -> np.ndarray:
  """Log-spaced FLOP budgets from low to high."""
  if not 0 < low < high:
    raise ValueError(f"budgets: need 0 < low < high, got {low}, {high}")
  return np.geomspace(low, high, max(2, int(round(np.log10(high / low) * per_decade)) + 1))
