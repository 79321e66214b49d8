"""`mixlaws report STUDY`: the study, loss curves, loss table, fits, optimal allocations, isoFLOPs, downstream, health.

Each section is a function from the store (and fits) to HTML; a section that cannot be drawn for
this sweep (too few finished runs, no downstream metric) says why in one line.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
import re
import tempfile
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mixlaws import export, plots, store
from mixlaws.fit import fitter, isoflop, laws
from mixlaws.fit import study as fit_study

DENSE_LAW = "chinchilla"
LAWS = ("chinchilla", "wang2024")  # fitted by default: a dense law on the dense runs, an MoE law on all
MEMORY = (24e9, 80e9)  # bytes: the memory caps of Ludziejewski et al. 2025's Table 2 columns (PAPERS.md)
GRID = ("d_model", "n_layers", "expansion_rate", "granularity", "top_k", "router", "tokens")

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:12px;display:block;overflow-x:auto;max-width:100%}
caption{text-align:left;font-weight:600;padding:2px 0}td{white-space:nowrap}
th,td{border:1px solid #ddd;padding:2px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}
.note{color:#666;font-style:italic}.bad{color:#b00}
nav a{margin-right:1em}
"""


@dataclasses.dataclass
class Fitted:
  """One fitted law on a subset of the runs, with its held-out error when there were points to spare."""

  law: laws.Law
  subset: str  # which runs: "dense runs" or "all runs"
  points: pd.DataFrame
  fit: fitter.Fit
  holdout: fitter.Holdout | None = None


def write(
  st: store.Store,
  study: str,
  path: str | os.PathLike,
  *,
  law_names: Sequence[str] = LAWS,
  fits: Sequence[fitter.Fit] = (),
  bootstrap: int = 100,
  starts: int | None = None,
) -> str:
  """Writes the report of `study` to `path` (replacing it in one rename); returns the path."""
  page = build(st, study, law_names=law_names, fits=fits, bootstrap=bootstrap, starts=starts)
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(page)
  os.replace(tmp, path)
  return path


def build(
  st: store.Store,
  study: str,
  *,
  law_names: Sequence[str] = LAWS,
  fits: Sequence[fitter.Fit] = (),
  bootstrap: int = 100,
  starts: int | None = None,
) -> str:
  """The report of `study` as one HTML page."""
  runs = st.runs(study)
  if runs.empty:
    raise ValueError(f"{study}: no runs in the results store {st.path}; run `mixlaws collect {study}` first")
  with tempfile.TemporaryDirectory() as figures:
    fitted, fit_notes = fit_laws(st, study, law_names, fits, bootstrap=bootstrap, starts=starts)
    sections = [
      ("study", "The study", study_section(st, study, runs)),
      ("curves", "Loss curves", curves_section(st, study, runs, figures)),
      ("losses", "Loss table", loss_table_section(st, study)),
      ("fits", "Fitted laws", fits_section(fitted, fit_notes, figures)),
      ("optimal", "Optimal allocation", optimal_section(fitted)),
      ("isoflop", "isoFLOP profiles", isoflop_section(st, study, figures)),
      ("downstream", "Downstream metrics", downstream_section(st, study)),
      ("health", "Run health", health_section(st, study, runs)),
    ]
  nav = " ".join(f'<a href="#{key}">{title}</a>' for key, title, _ in sections)
  body = "\n".join(f'<section id="{key}"><h2>{title}</h2>\n{content}</section>' for key, title, content in sections)
  stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
  return (
    f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>mixlaws report: {_e(study)}</title>'
    f"<style>{STYLE}</style></head><body>\n<h1>mixlaws report: {_e(study)}</h1>\n"
    f'<p class="note">written {stamp} from {_e(st.path)}; rerun <code>mixlaws report {_e(study)}</code> to '
    f"update</p>\n<nav>{nav}</nav>\n{body}\n</body></html>\n"
  )


# --- HTML pieces ------------------------------------------------------------------------------


def _e(text) -> str:
  return html.escape(str(text))


def _text(value) -> str:
  """A store cell as text: "" for SQL NULL (None or NaN)."""
  return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _note(text: str) -> str:
  return f'<p class="note">{_e(text)}</p>'


def _cell(value) -> str:
  if isinstance(value, (float, np.floating)):
    return "" if math.isnan(value) else plots.number(value)
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    return plots.number(value) if abs(value) >= 1e4 else str(value)
  return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def table(frame: pd.DataFrame, caption: str = "") -> str:
  """An HTML table of a frame, numbers written as `plots.number` writes them."""
  head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
  rows = "".join("<tr>" + "".join(f"<td>{_e(_cell(v))}</td>" for v in row) + "</tr>" for row in frame.itertuples(False))
  cap = f"<caption>{_e(caption)}</caption>" if caption else ""
  return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>\n"


SVG = ("svg",)  # the page inlines SVG; no PNG is drawn


def figure(paths: Sequence[str], alt: str) -> str:
  """The SVG that `plots` wrote, inline."""
  svg_path = next(p for p in paths if p.endswith(".svg"))
  with open(svg_path, encoding="utf-8") as f:
    svg = f.read()
  svg = svg[svg.index("<svg") :]  # drop the XML declaration and DOCTYPE, which HTML does not take
  svg = svg.replace("<svg ", f'<svg role="img" aria-label="{_e(alt)}" ', 1)
  return f"<figure>{svg}</figure>\n"


# --- sections ---------------------------------------------------------------------------------


def _planned(study: str) -> tuple[int, float] | None:
  """(runs, FLOPs) the registered study plans, or None for a study the registry does not know."""
  from mixlaws import registry

  try:
    specs = registry.expand(study)
  except (ValueError, ImportError):
    return None
  return len(specs), float(sum(s.counts.flops("chinchilla") for s in specs))


def study_section(st: store.Store, study: str, runs: pd.DataFrame) -> str:
  grid = pd.DataFrame(
    [(c, ", ".join(_cell(v) for v in sorted(runs[c].dropna().unique()))) for c in GRID if c in runs],
    columns=["field", "values in the sweep"],
  )
  states = runs["state"].value_counts().reindex(["done", "running", "pending", "preempted", "failed"]).fillna(0)
  states = pd.DataFrame({"state": states.index, "runs": states.to_numpy(int)})
  curves = st.curves(study, split="train", names=("loss",))
  spent = float(curves.groupby("run_id")["flops"].max().sum()) if not curves.empty else 0.0
  planned = _planned(study)
  stored = float(runs["flops_chinchilla"].sum())
  n_planned, flops_planned = planned if planned else (len(runs), stored)
  budget = pd.DataFrame(
    [["runs", len(runs), n_planned], ["training FLOPs (6·N·D)", spent, flops_planned]],
    columns=["", "spent / in the store", "planned"],
  )
  source = "the study's plan" if planned else "the runs in the store (the study is not registered)"
  done = int((runs["state"] == "done").sum())
  partial = "" if done == n_planned else _note(f"partial sweep: {done} of {n_planned} planned runs are done")
  return (
    table(grid, "the grid")
    + table(states, "runs by state")
    + table(budget, f"FLOPs spent (logged) and planned ({source})")
    + partial
  )


def curves_section(st: store.Store, study: str, runs: pd.DataFrame, out_dir: str) -> str:
  frame = st.curves(study, split="train", names=("loss",))
  if frame.empty:
    return _note("no run has logged a training loss yet")
  frame = frame[np.isfinite(frame["value"])]
  title = f"{study}: training loss, every run"
  parts = [figure(plots.curves(frame, out_dir, runs=runs, name="curves", title=title, formats=SVG),
                  "training loss of every run")]  # fmt: skip
  if plots.runs_legend(runs)["family"].nunique() > 1:
    paths = plots.curves_by_family(
      frame, runs, out_dir, title=f"{study}: training loss, one panel per family", formats=SVG
    )
    parts.append(figure(paths, "training loss per family"))
  return "".join(parts)


def loss_table_section(st: store.Store, study: str) -> str:
  frame = export.loss_table(st, study)
  left_out = frame.attrs.get("left_out", {})
  frame = frame.drop(columns=["study"])
  note = _note(f"{len(left_out)} run(s) have no final loss yet (empty cells)") if left_out else ""
  return table(frame, "final eval loss per run (nats/token); FLOPs by the chinchilla convention, 6·N·D") + note


def _points(st: store.Store, study: str, law: laws.Law) -> pd.DataFrame:
  return fit_study.from_store(st, study, law.convention or "chinchilla")


def fit_laws(
  st: store.Store,
  study: str,
  law_names: Sequence[str],
  fits: Sequence[fitter.Fit],
  *,
  bootstrap: int,
  starts: int | None,
) -> tuple[list[Fitted], list[str]]:
  """Each law fitted (or taken from `fits`) on the runs it applies to; notes for the laws left out."""
  out, notes = [], []
  given = {f.law: f for f in fits}
  for name in dict.fromkeys([*law_names, *given]):
    law = laws.get(name)
    if law.target != "loss":
      notes.append(f"{name}: predicts {law.target}, not the loss; fit it with `mixlaws fit --metric`")
      continue
    try:
      points = _points(st, study, law)
    except ValueError as e:
      notes.append(f"{name}: {e}")
      continue
    points, subset = _subset(law, points)
    needed = len(law.params) + 1
    if name not in given and len(points) < needed:
      notes.append(f"{name}: {len(points)} finished run(s) among {subset}; it needs at least {needed}")
      continue
    if "experts" in law.columns and points["experts"].nunique() < 2:
      notes.append(f"{name}: needs finished runs at two or more expansion rates E")
      continue
    init = fit_study.start_subset(law, starts) if starts else None
    try:
      result = given.get(name) or fitter.fit(law, points, bootstrap=bootstrap, seed=0, init=init)
      held = None
      if len(points) > needed:  # the lowest-loss run, the one an extrapolation is for, held out
        held = fitter.holdout(law, points, fitter.lowest(points, 1), init=init)
    except ValueError as e:
      notes.append(f"{name}: {e}")
      continue
    out.append(Fitted(law, subset, points, result, held))
  return out, notes


def _subset(law: laws.Law, points: pd.DataFrame) -> tuple[pd.DataFrame, str]:
  """The runs a law describes: every run for a law in E, the MoE runs for one in G only, else the dense runs."""
  if "experts" in law.columns:
    return points, "all finished runs"
  if "granularity" in law.columns:  # Krajewski et al. 2024: MoE at one expansion rate, G varying
    moe = points[points["experts"] > 1]
    rate = moe["experts"].mode().iloc[0] if len(moe) else 0
    return moe[moe["experts"] == rate].reset_index(drop=True), f"the MoE runs at E={rate:g}"
  return points[points["experts"] == 1].reset_index(drop=True), "the dense runs"


def fits_section(fitted: Sequence[Fitted], notes: Sequence[str], out_dir: str) -> str:
  parts = []
  for i, f in enumerate(fitted):
    r = f.fit
    ci = f"{100 * r.ci:g}% " if r.ci else ""
    rows = [[k, v, *(r.intervals or {}).get(k, (math.nan, math.nan))] for k, v in r.params.items()]
    coefficients = pd.DataFrame(rows, columns=["coefficient", "value", f"{ci}low", f"{ci}high"])
    residual = fitter.predict(f.law, r, f.points) - f.points[f.law.target].to_numpy()
    quality = [["runs fitted", r.n_points], ["RMSE (nats/token)", float(np.sqrt(np.mean(residual**2)))],
               ["starts that reached the best objective", f"{r.n_at_best} of {r.n_starts}"]]  # fmt: skip
    if f.holdout is not None:
      quality.append(["held-out error, the lowest-loss run (nats/token)", f.holdout.rmse])
    parts.append(f"<h3>{_e(f.law.name)} on {_e(f.subset)}</h3><p><code>{_e(f.law.formula)}</code></p>")
    parts.append(table(coefficients, "coefficients" + (" with bootstrap intervals" if r.intervals else "")))
    parts.append(table(pd.DataFrame(quality, columns=["", "value"]), "fit quality"))
    parts.append(figure(plots.fit(f.law, r, f.points, out_dir, name=f"fit_{i}", formats=SVG), f"{f.law.name} fit"))
    parts.append(
      figure(
        plots.residuals(f.law, r, f.points, out_dir, name=f"residuals_{i}", formats=SVG), f"{f.law.name} residuals"
      )
    )
  parts += [_note(n) for n in notes]
  return "".join(parts) or _note("no law was asked for")


def _interval(values: Sequence[float], ci: float) -> tuple[float, float]:
  v = np.asarray([x for x in values if np.isfinite(x)])
  if not len(v):
    return math.nan, math.nan
  return tuple(np.quantile(v, [(1 - ci) / 2, (1 + ci) / 2]))


def _allocation_rows(f: Fitted, budgets: Sequence[float], **constraints) -> list[list]:
  rows = []
  for c in budgets:
    best, _ = fit_study.allocation(f.law, f.fit.params, c, **constraints)
    row = [c, best.experts, best.granularity, best.params_total or best.params, best.active_params, best.tokens]
    samples = [fit_study.allocation(f.law, s, c, **constraints)[0] for s in (f.fit.samples or [])[:50]]
    for column in ("active_params", "tokens"):
      low, high = _interval([getattr(s, column) for s in samples], f.fit.ci or 0.95)
      row.append(f"{plots.number(low)}–{plots.number(high)}" if samples else "")
    rows.append([*row, best.loss] + ([_cell(best.memory_bytes / 1e9) + " GB"] if best.memory_bytes else []))
  return rows


def optimal_section(fitted: Sequence[Fitted]) -> str:
  parts = []
  columns = ["FLOPs C", "E", "G", "N", "N_act", "D", "N_act interval", "D interval", "loss"]
  for f in fitted:
    try:
      fit_study.allocation(f.law, f.fit.params, 1e21)
    except ValueError:
      parts.append(_note(f"{f.law.name}: has no compute-optimal allocation (chinchilla, krajewski2024, "
                         "ludziejewski2025 do)"))  # fmt: skip
      continue
    largest = float(f.points["flops"].max())
    budgets = [largest * 10**k for k in range(4)]
    rows = _allocation_rows(f, budgets)
    caption = f"{f.law.name}: compute-optimal (N, D, E, G) at the largest run's compute and 10×, 100×, 1000× it"
    parts.append(table(pd.DataFrame(rows, columns=columns), caption))
    if f.law.name == "ludziejewski2025":
      for cap in MEMORY:
        rows = _allocation_rows(f, budgets, memory_bytes=cap)
        parts.append(table(pd.DataFrame(rows, columns=[*columns, "memory"]), f"memory-optimal at {cap / 1e9:g} GB"))
  if not any(f.law.name == "ludziejewski2025" for f in fitted):
    parts.append(_note("memory-optimal allocation needs a ludziejewski2025 fit: `mixlaws report STUDY --law "
                       "ludziejewski2025` once the sweep has enough E values"))  # fmt: skip
  return "".join(parts)


def isoflop_section(st: store.Store, study: str, out_dir: str) -> str:
  try:
    points = _points(st, study, laws.get(DENSE_LAW))
  except ValueError as e:
    return _note(str(e))
  points = points[points["experts"] == 1]
  points = points.assign(flops=isoflop.snap_budgets(points["flops"]))
  sizes = points.groupby("flops")["params"].nunique()
  if (sizes >= 3).sum() < 2:
    return _note("this study has no two compute budgets with three or more dense model sizes each")
  points = points[points["flops"].isin(sizes[sizes >= 3].index)]
  return figure(plots.isoflop(points, isoflop.minima(points), out_dir, formats=SVG), "isoFLOP profiles")


def downstream_section(st: store.Store, study: str) -> str:
  names = [name for split, name in st.metric_names(study) if split == "downstream"]
  if not names:
    return _note("no downstream metric yet (`mixlaws eval` writes them)")
  frame = None
  for name in names:
    values = st.metric_at_end(study, name)[["run_id", "value"]].rename(columns={"value": name})
    frame = values if frame is None else frame.merge(values, on="run_id", how="outer")
  return table(frame, "each run's downstream metrics at its last evaluation")


def health_section(st: store.Store, study: str, runs: pd.DataFrame) -> str:
  curves = st.curves(study, split="train", names=("loss", "step_time", "mfu"))
  rows = []
  for _, run in runs.iterrows():
    c = curves[curves["run_id"] == run["run_id"]]
    loss = c[c["name"] == "loss"].sort_values("step")
    step_time = c[c["name"] == "step_time"].sort_values("step")
    nan = bool((~np.isfinite(loss["value"])).any()) or bool(re.search(r"\bnan\b", _text(run["error"]), re.I))
    throughput = math.nan
    if len(step_time) and len(loss) >= 2:
      per_step = np.diff(loss["tokens"].to_numpy(float)) / np.maximum(np.diff(loss["step"].to_numpy(float)), 1)
      throughput = float(np.median(per_step) / np.median(step_time["value"]))
    mfu = c.loc[c["name"] == "mfu", "value"]
    preempted = run["state"] == "preempted" or (run["attempt"] or 0) > 0  # a later attempt resumed it
    flags = [
      flag for flag, on in (("failed", run["state"] == "failed"), ("NaN loss", nan), ("preempted", preempted)) if on
    ]
    mfu = float(mfu.median()) if len(mfu) else math.nan
    rows.append([run["run_id"], run["state"], run["step"], run["attempt"], throughput, mfu, ", ".join(flags),
                 _text(run["error"])])  # fmt: skip
  frame = pd.DataFrame(rows, columns=["run", "state", "step", "attempt", "tokens/s", "MFU", "flags", "error"])
  flagged = frame[frame["flags"] != ""]
  summary = _note(f"{len(flagged)} of {len(frame)} runs failed, hit NaN or were preempted") if len(flagged) else ""
  return summary + table(frame, "every run: throughput and MFU are medians over its logged steps")
