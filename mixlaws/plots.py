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


def number(x: float, suffixes: bool = True) -> str:
  """A tick or legend number as people write it: 3.8, 250, 26k, 1.5M, 2B, 1e21 (never 4×10⁰).

  suffixes=False writes 1e11 for 100B (FLOPs read as powers of ten).
  """
  x = float(x)
  if x == 0 or not np.isfinite(x):
    return f"{x:g}"
  magnitude = abs(float(f"{x:.3g}"))  # as rounded to 3 figures: 999.7 is written as 1k
  if 1e-3 <= magnitude < 1e3:
    return f"{x:.3g}"
  for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")) if suffixes else ():
    if scale <= magnitude < 1e3 * scale:
      return f"{x / scale:.3g}{suffix}"
  if 1e3 <= magnitude < 1e4:
    return f"{x:.4g}"
  text = f"{x:.2g}"
  if "e" not in text:  # 0.0001 prints plainly
    return text
  mantissa, exponent = text.split("e")
  return f"{mantissa}e{int(exponent)}"


def _plain_ticks(ax) -> None:
  """Plain tick labels on both axes (log axes label their minor ticks too when they span little)."""
  from matplotlib import ticker

  class PlainLog(ticker.LogFormatter):
    # LogFormatter chooses which ticks get a label; only the label text is ours.
    def _num_to_string(self, x, vmin, vmax):
      return number(x, suffixes=not self.axis.get_label_text().endswith("(FLOPs)"))

  for axis in (ax.xaxis, ax.yaxis):
    if axis.get_scale() == "log":
      axis.set_major_formatter(PlainLog(labelOnlyBase=False))
      axis.set_minor_formatter(PlainLog(labelOnlyBase=False, minor_thresholds=(1.2, 0.6)))
    else:
      axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: number(v)))


def family(experts: float, granularity: float = 1.0, router: str | None = None) -> str:
  """A configuration's family as a legend names it: "dense", "MoE E=8 G=2"."""
  if not experts or experts <= 1:
    return "dense"
  label = f"MoE E={experts:g}" + (f" G={granularity:g}" if granularity and granularity != 1 else "")
  return label + (f" ({router.replace('_', ' ')})" if router and router != "token_choice" else "")


def runs_legend(runs: pd.DataFrame) -> pd.DataFrame:
  """run_id → family, size N (active), budget D: what the curves' colours, shades and styles show."""
  router = runs["router"] if "router" in runs else [None] * len(runs)
  return pd.DataFrame(
    {
      "run_id": runs["run_id"],
      "family": [family(e, g, r) for e, g, r in zip(runs["expansion_rate"], runs["granularity"], router)],
      "size": runs["params_active"].astype(float),
      "budget": runs["tokens"].astype(float),
    }
  )


STYLES = ("-", "--", ":", "-.")


def _family_colors(families) -> dict[str, str]:
  """One colour per family, in order of first appearance (dense first)."""
  ordered = sorted(dict.fromkeys(families), key=lambda f: f != "dense")  # stable: keeps the callers' order
  return {f: f"C{i % 10}" for i, f in enumerate(ordered)}


def _shade(color: str, i: int, n: int) -> tuple[float, float, float]:
  """The family colour for model i of n (by size): the largest in full colour, smaller ones paler."""
  from matplotlib import colors

  rgb = np.array(colors.to_rgb(color))
  weight = 1.0 if n <= 1 else 0.4 + 0.6 * i / (n - 1)
  return tuple(weight * rgb + (1 - weight))


def _legend(ax, entries: list[tuple[str, dict]], title: str | None = None, outside: bool = False) -> None:
  """A legend from (label, line style) pairs, drawn as short lines."""
  from matplotlib.lines import Line2D

  handles = [Line2D([], [], **style) for _, style in entries]
  kwargs = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if outside else {}
  ax.legend(handles, [label for label, _ in entries], fontsize=7, title=title, title_fontsize=7, **kwargs)


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")  # files only; no display needed
  import matplotlib.pyplot as plt

  return plt


FORMATS = ("png", "svg")


def save(fig, out_dir: str, name: str, formats: Sequence[str] = FORMATS) -> list[str]:
  """Writes the figure in each format (PNG and SVG by default); returns the paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for ext in formats:
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


def _ordered_legend(runs: pd.DataFrame, ids=None) -> pd.DataFrame:
  rows = runs if ids is None else runs[runs["run_id"].isin(ids)]
  return runs_legend(rows.sort_values(["expansion_rate", "granularity", "params_active", "run_id"]))


def _draw_curves(ax, frame: pd.DataFrame, legend: pd.DataFrame, colors: dict, budgets: list, x: str) -> list:
  """One line per run: the family's colour (shaded by size), the budget's line style; legend entries."""
  entries = []
  for fam, members in sorted(legend.groupby("family", sort=False), key=lambda item: list(colors).index(item[0])):
    sizes = sorted(members["size"].unique())
    for i, size in enumerate(sizes):
      color = _shade(colors[fam], i, len(sizes))
      entries.append((f"{fam} N={number(size)}" if len(sizes) > 1 or fam == "dense" else fam, {"color": color}))
      for _, run in members[members["size"] == size].iterrows():
        g = frame[frame["run_id"] == run["run_id"]]
        g = g[(g[x] > 0) & (g["value"] > 0)]
        ax.plot(g[x], g["value"], STYLES[budgets.index(run["budget"]) % len(STYLES)], color=color, lw=1.2)
  return entries


def _budget_entries(budgets: list) -> list:
  return [(f"D = {number(b)} tokens", {"color": "grey", "ls": STYLES[i % len(STYLES)]}) for i, b in enumerate(budgets)]


def _loss_axes(ax, x: str) -> None:
  ax.set(xscale="log", yscale="log", xlabel=LABELS.get(x, x), ylabel=LABELS["loss"])
  ax.grid(True, which="both", alpha=0.3)
  _plain_ticks(ax)


def curves(
  frame: pd.DataFrame,
  out_dir: str,
  *,
  runs: pd.DataFrame | None = None,
  x: str = "tokens",
  name: str = "curves",
  formats: Sequence[str] = FORMATS,
  title: str = "",
) -> list[str]:
  """Loss against tokens (or flops, step) per run, from a long frame run_id, x, value.

  With `runs` (the store's runs rows) each curve is named by its configuration: one colour per
  family (dense, each E and G), paler for a smaller model, one line style per token budget D.
  """
  missing = [c for c in ("run_id", x, "value") if c not in frame.columns]
  if missing:
    raise ValueError(f"curves: the frame lacks column(s) {', '.join(missing)}")
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(8, 4.5))
  ids = sorted(frame["run_id"].unique())
  legend = _ordered_legend(runs, ids) if runs is not None else None
  if legend is None or set(legend["run_id"]) != set(ids):
    for run_id, g in frame.groupby("run_id", sort=True):
      g = g[(g[x] > 0) & (g["value"] > 0)]
      ax.plot(g[x], g["value"], lw=1, label=str(run_id))
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  else:
    budgets = sorted(legend["budget"].unique())
    colors = _family_colors(_ordered_legend(runs)["family"])
    _legend(ax, _draw_curves(ax, frame, legend, colors, budgets, x) + _budget_entries(budgets), outside=True)
  ax.set_title(title or "training loss per run", fontsize=10)
  _loss_axes(ax, x)
  return save(fig, out_dir, name, formats)


def curves_by_family(
  frame: pd.DataFrame,
  runs: pd.DataFrame,
  out_dir: str,
  *,
  x: str = "tokens",
  name: str = "curves_by_family",
  formats: Sequence[str] = FORMATS,
  title: str = "",
) -> list[str]:
  """One panel per family (dense, each E and G) on shared axes, coloured and styled as `curves` does."""
  legend = _ordered_legend(runs, frame["run_id"].unique())
  colors = _family_colors(_ordered_legend(runs)["family"])
  families = [f for f in colors if f in set(legend["family"])]
  budgets = sorted(legend["budget"].unique())
  plt = _pyplot()
  cols = min(3, len(families))
  rows = -(-len(families) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), sharex=True, sharey=True, squeeze=False)
  for ax, fam in zip(axes.flat, families):
    members = legend[legend["family"] == fam]
    entries = _draw_curves(ax, frame, members, colors, budgets, x)
    _legend(ax, entries + _budget_entries(budgets))
    ax.set_title(f"{fam} runs", fontsize=9)
    _loss_axes(ax, x)
    ax.xaxis.set_minor_formatter("")  # narrow panels: decade labels only
  for ax in axes.flat[len(families) :]:
    ax.set_visible(False)
  fig.suptitle(title or "training loss per family", fontsize=10)
  fig.tight_layout()
  return save(fig, out_dir, name, formats)


def isoflop(
  points: pd.DataFrame,
  minima: pd.DataFrame,
  out_dir: str,
  *,
  name: str = "isoflop",
  formats: Sequence[str] = FORMATS,
  size: str = "params",
) -> list[str]:
  """Loss against N per FLOP budget with the fitted parabolas and minima (left); N*(C) (right)."""
  from mixlaws.fit import isoflop as isoflop_lib

  plt = _pyplot()
  fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
  colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(minima), 1)))
  for color, (_, row) in zip(colors, minima.iterrows()):
    g = points[points["flops"] == row["flops"]]
    left.plot(g[size], g["loss"], "o", color=color, ms=4, label=f"C = {number(row['flops'])}")
    x = np.log(g[size].to_numpy(np.float64))
    p = isoflop_lib.parabola(x, g["loss"].to_numpy(np.float64), bootstrap=0)
    grid = np.linspace(x.min(), x.max(), 100)
    left.plot(np.exp(grid), p.a * grid**2 + p.b * grid + p.c, "-", color=color, lw=1)
    if row["interior"]:
      left.errorbar(
        row["n_star"], row["loss_star"], xerr=[[row["n_star"] - row["n_lo"]], [row["n_hi"] - row["n_star"]]],
        fmt="*", color=color, ms=10, capsize=3,
      )  # fmt: skip
  left.set(
    xscale="log",
    xlabel=LABELS.get(size, size),
    ylabel=LABELS["loss"],
    title="loss vs N at fixed compute C (one profile per C)",
  )
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
  else:
    right.text(0.5, 0.5, "fewer than two budgets\nhave an interior minimum", ha="center", transform=right.transAxes)
  right.set(xscale="log", yscale="log", xlabel=LABELS["flops"], ylabel="compute-optimal " + LABELS.get(size, size),
            title="the loss-minimising N at each compute C")  # fmt: skip
  for ax in (left, right):
    ax.grid(True, which="both", alpha=0.3)
    _plain_ticks(ax)
  return save(fig, out_dir, name, formats)


def _axes(law, points: pd.DataFrame, x: str | None) -> tuple[str, str | None]:
  """(x column, group column): group by the discrete column with the fewest values (≥ 2 points each)."""
  candidates = [
    c for c in law.columns if c != x and 2 <= points[c].nunique() <= 8 and len(points) >= 2 * points[c].nunique()
  ]
  group = min(candidates, key=lambda c: points[c].nunique()) if candidates else None
  if x is None:
    x = next(c for c in law.columns if c != group)
  return x, group


def _law_family(row: pd.Series, columns: Sequence[str]) -> str:
  """The family of a group of points, from the law's columns: "dense", "MoE E=8", "G=4"."""
  parts = []
  if "experts" in columns:
    parts.append(family(row["experts"], row["granularity"] if "granularity" in columns else 1.0))
  elif "granularity" in columns:
    parts.append(f"G={row['granularity']:g}")
  return " ".join(parts) or "runs"


def fit(
  law,
  result,
  points: pd.DataFrame,
  out_dir: str,
  *,
  x: str | None = None,
  name: str = "fit",
  formats: Sequence[str] = FORMATS,
  extrapolate: float = 10.0,
) -> list[str]:
  """Observed points and the fitted law: loss against N, one curve per family and token budget D.

  Every column of the law but x is held at each group's observed value: colour names the family
  (E, G), line style the budget D. A law in G (Krajewski et al. 2024) gets a second panel, loss
  against G at fixed N and D, as the paper's figures draw it. Laws with a continuous second column
  (say, unique tokens) fall back to one curve per group of their most discrete column.
  """
  x = x or law.columns[0]
  others = [c for c in law.columns if c != x]
  if any(c not in points or points[c].nunique() > 8 for c in others):
    return _fit_scaled(law, result, points, out_dir, x=x, name=name, extrapolate=extrapolate, formats=formats)
  from mixlaws.fit import fitter

  target = result.options.get("target", law.target)
  plt = _pyplot()
  by_g = "granularity" in others and points["granularity"].nunique() >= 1
  fig, axes = plt.subplots(1, 2 if by_g else 1, figsize=(13, 4.8) if by_g else (8, 4.8), squeeze=False)
  ax = axes[0, 0]
  budgets = sorted(points["tokens"].unique()) if "tokens" in others else [None]
  groups = list(points.groupby(others, sort=True)) if others else [((), points)]
  labels = [_law_family(g.iloc[0], others) for _, g in groups]
  colors = _family_colors(labels)
  for label, (_, g) in zip(labels, groups):
    row = g.iloc[0]
    style = STYLES[budgets.index(row["tokens"]) % len(STYLES)] if "tokens" in others else "-"
    ax.plot(g[x], g[target], "o", color=colors[label], ms=4)
    grid = np.geomspace(g[x].min() / 2, g[x].max() * extrapolate, 120)
    cols = {x: grid, **{c: np.full_like(grid, row[c]) for c in others}}
    ax.plot(grid, fitter.predict(law, result, cols), style, color=colors[label], lw=1.2)
  ax.axvspan(points[x].max(), ax.get_xlim()[1], color="grey", alpha=0.08, lw=0)
  entries = [(label, {"color": color, "marker": "o", "ms": 4}) for label, color in colors.items()]
  if "tokens" in others:
    entries += [(f"D = {number(b)}", {"color": "grey", "ls": STYLES[i % len(STYLES)]}) for i, b in enumerate(budgets)]
  _legend(ax, entries, outside=not by_g)
  family_columns = ", ".join(c[0].upper() for c in ("experts", "granularity") if c in others)
  held = " and ".join(filter(None, ["D (line style)" if "tokens" in others else "",
                                    f"{family_columns} (colour)" if family_columns else ""]))  # fmt: skip
  ax.set(xscale="log", yscale="log", xlabel=LABELS.get(x, x), ylabel=LABELS.get(target, target))
  ax.set_title(f"{law.name}: {target} vs {LABELS.get(x, x).split()[-1]}" + (f" at fixed {held}" if held else "")
               + "\npoints: runs; lines: the fit (shaded: beyond the data)", fontsize=9)  # fmt: skip
  if by_g:
    _by_granularity(axes[0, 1], law, result, points, x, target, budgets)
  for a in axes[0]:
    a.grid(True, which="both", alpha=0.3)
    _plain_ticks(a)
  return save(fig, out_dir, name, formats)


def _by_granularity(ax, law, result, points: pd.DataFrame, x: str, target: str, budgets: list) -> None:
  """Loss against G at fixed N (shade) and the largest budget D, with the runs trained at that D."""
  from mixlaws.fit import fitter

  tokens = budgets[-1]
  at_d = points[points["tokens"] == tokens]
  sizes = sorted(at_d[x].unique())
  if len(sizes) > 4:
    sizes = [sizes[i] for i in np.linspace(0, len(sizes) - 1, 4).round().astype(int)]
  g_max = max(64.0, float(points["granularity"].max()) * 4)
  grid = np.geomspace(1, g_max, 60)
  entries = []
  for i, size in enumerate(sizes):
    color = _shade("C3", i, len(sizes))
    cols = {x: np.full_like(grid, size), "tokens": np.full_like(grid, tokens), "granularity": grid}
    ax.plot(grid, fitter.predict(law, result, cols), "-", color=color, lw=1.2)
    observed = at_d[at_d[x] == size]
    ax.plot(observed["granularity"], observed[target], "o", color=color, ms=4)
    entries.append((f"N = {number(size)}", {"color": color, "marker": "o", "ms": 4}))
  ax.axvspan(points["granularity"].max(), g_max, color="grey", alpha=0.08, lw=0)
  _legend(ax, entries)
  ax.set(xscale="log", yscale="log", xlabel=LABELS["granularity"], ylabel=LABELS.get(target, target))
  ax.set_title(f"{law.name}: {target} vs G at fixed N (colour) and D = {number(tokens)}", fontsize=9)


def _fit_scaled(
  law,
  result,
  points: pd.DataFrame,
  out_dir: str,
  *,
  x: str | None = None,
  name: str = "fit",
  formats: Sequence[str] = FORMATS,
  extrapolate: float = 10.0,
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
    label = f"{LABELS.get(group, group).split()[-1]} = {number(value)}" if group else "observed"
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
  scaled = [c for c in law.columns if c not in (x, group)]
  held = f" at fixed {group}" if group else ""
  ratio = f", {', '.join(scaled)} ∝ {x}" if scaled else ""
  ax.set_title(f"{law.name}{held}{ratio}: fitted (solid), extrapolated (dashed)", fontsize=9)
  ax.legend(fontsize=7)
  ax.grid(True, which="both", alpha=0.3)
  _plain_ticks(ax)
  return save(fig, out_dir, name, formats)


def residuals(
  law,
  result,
  points: pd.DataFrame,
  out_dir: str,
  *,
  x: str | None = None,
  name: str = "residuals",
  formats: Sequence[str] = FORMATS,
) -> list[str]:
  """ln y − ln ŷ (or y − ŷ for linear-residual laws) against x, with the Huber δ band.

  Points are coloured by family (E, G) and marked by token budget D where the frame has them.
  """
  from mixlaws.fit import fitter

  x = x or law.columns[0]
  target = result.options.get("target", law.target)
  predicted = fitter.predict(law, result, points)
  log = result.options.get("residual", law.residual) == "log"
  r = np.log(points[target].to_numpy()) - np.log(predicted) if log else points[target].to_numpy() - predicted
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(8, 4))
  columns = [c for c in ("experts", "granularity") if c in points]
  labels = [_law_family(row, columns) for _, row in points.iterrows()] if columns else ["runs"] * len(points)
  colors = _family_colors(labels)
  budgets = sorted(points["tokens"].unique()) if "tokens" in points else []
  markers = "os^Dv"
  entries = [(label, {"color": color, "marker": "o", "ls": "", "ms": 5}) for label, color in colors.items()]
  for label, color in colors.items():
    for i, budget in enumerate(budgets or [None]):
      mask = np.array([lab == label for lab in labels]) & (points["tokens"].to_numpy() == budget if budgets else True)
      ax.plot(points[x].to_numpy()[mask], r[mask], markers[i % len(markers)], color=color, ms=5)
  if len(budgets) > 1:
    entries += [(f"D = {number(b)}", {"color": "grey", "marker": markers[i % len(markers)], "ls": ""})
                for i, b in enumerate(budgets)]  # fmt: skip
  ax.axhline(0.0, color="black", lw=0.8)
  delta = result.options.get("delta")
  if delta:
    ax.axhspan(-delta, delta, color="grey", alpha=0.2)
    entries.append((f"Huber δ = {delta:g}", {"color": "grey", "alpha": 0.4, "lw": 6}))
  _legend(ax, entries, outside=True)
  ylabel = f"ln {target} − ln fit" if log else f"{target} − fit"
  ax.set(xscale="log", xlabel=LABELS.get(x, x), ylabel=ylabel)
  rmse = f"RMSE of ln {target} {np.sqrt(np.mean(r**2)):.2g}" if log else f"RMSE {np.sqrt(np.mean(r**2)):.2g}"
  ax.set_title(f"{law.name}: residual of each run ({rmse})", fontsize=10)
  ax.grid(True, which="both", alpha=0.3)
  _plain_ticks(ax)
  return save(fig, out_dir, name, formats)


def optimal(
  table: pd.DataFrame,
  out_dir: str,
  *,
  observed_flops: float | None = None,
  name: str = "optimal",
  formats: Sequence[str] = FORMATS,
  title: str = "",
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
        ax.annotate(
          f"{column[0].upper()}={number(value)}", (ci, y), fontsize=6, textcoords="offset points", xytext=(0, 5)
        )
  if observed_flops is not None:
    ax.axvline(observed_flops, ls=":", color="grey", label="largest observed run")
  ax.set(
    xscale="log",
    yscale="log",
    xlabel=LABELS["flops"],
    ylabel="parameters / tokens",
    title=title or "compute-optimal N and D at each compute budget C",
  )
  ax.legend(fontsize=8)
  ax.grid(True, which="both", alpha=0.3)
  _plain_ticks(ax)
  return save(fig, out_dir, name, formats)


def allocation_table(allocations: Sequence) -> pd.DataFrame:
  """Rows of `mixlaws.fit.optimal.Allocation` as a frame for `optimal`."""
  import dataclasses

  return pd.DataFrame([dataclasses.asdict(a) for a in allocations])


def budgets(low: float, high: float, per_decade: int = 4) -> np.ndarray:
  """Log-spaced FLOP budgets from low to high."""
  if not 0 < low < high:
    raise ValueError(f"budgets: need 0 < low < high, got {low}, {high}")
  return np.geomspace(low, high, max(2, int(round(np.log10(high / low) * per_decade)) + 1))
