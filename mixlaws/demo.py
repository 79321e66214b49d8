"""`mixlaws demo`: the whole pipeline on the embedded default, on this machine.

The `smoke` study (dense and MoE at several E and G, two token budgets) on the standard library's
Python sources, byte tokens and the CPU: trained by the local backend, collected into SQLite,
fitted with a dense law (Chinchilla) and an MoE law (Wang et al. 2024, E as a variable) with
bootstrap intervals, exported as loss tables and drawn. Every stage is re-runnable: a second demo
skips finished runs, and an interrupted one (Ctrl-C) resumes from the runs' checkpoints.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import pandas as pd

from mixlaws import collect, console, export, registry, store, sweep
from mixlaws.fit import fitter, laws
from mixlaws.fit import study as fit_study

STUDY = "smoke"
DENSE_LAW = "chinchilla"  # Hoffmann et al. 2022: E + A/N^α + B/D^β, on the dense runs
MOE_LAW = "wang2024"  # A/(N^α·E^γ) + B/D^β + σ, on every run (dense is E = 1)


def _stage(echo: Callable, number: int, title: str) -> None:
  echo("")
  echo(f"[bold cyan]── {number}/5 {title}[/]")


def train(root: str, workers: int, echo: Callable) -> int:
  """Queues the study and trains what is not done yet; 0 when every run is done."""
  from mixlaws.launch import local

  specs = registry.expand(STUDY)
  queued = sweep.enqueue(specs, root)
  takeable, held = sweep.remaining(sweep.scan(root, STUDY))
  done = len(specs) - takeable - held
  echo(f"{len(specs)} runs in {sweep.study_dir(root, STUDY)} ({queued['new']} new): {done} done, {takeable} to train")
  if not takeable and not held:
    return 0
  return local.run(STUDY, root, workers=workers, echo=echo)


def fit_law(law_name: str, points, bootstrap: int, out_dir: str, echo: Callable) -> tuple[fitter.Fit, str]:
  """Fits one law with bootstrap intervals, prints its coefficients and writes <law>.json."""
  law = laws.get(law_name)
  result = fitter.fit(law, points, bootstrap=bootstrap, seed=0)
  rows = []
  for name, value in result.params.items():
    low, high = (result.intervals or {}).get(name, (float("nan"), float("nan")))
    rows.append([name, f"{value:.4g}", f"{low:.4g}", f"{high:.4g}"])
  ci = f"{100 * result.ci:g}% " if result.ci else ""
  console.print_table(f"{law.name} on {result.n_points} runs: {law.formula}", ["parameter", "value",
                      f"{ci}low", f"{ci}high"], rows)  # fmt: skip
  echo(f"objective {result.objective:.4g}; {result.n_at_best} of {result.n_starts} starts reached it")
  path = os.path.join(out_dir, f"{law.name}.json")
  with open(path, "w") as f:
    json.dump({"law": law.name, "formula": law.formula, "source": f"study {STUDY}", "fit": result.to_dict()}, f,
              indent=2)  # fmt: skip
  return result, path


def findings(points, moe_fit: fitter.Fit) -> list[list[str]]:
  """The demo's check of the papers' MoE findings on its own runs (single seed: differences, not intervals).

  F1: MoE (E=8, G=1) minus the dense model of the same shape, per budget (negative: MoE is better).
  F2: the loss at E = 1, 4, 8 (G=1) at the largest budget, and whether it falls with E.
  F5: Wang et al. 2024's γ with its bootstrap interval (> 0: more experts help).
  """
  # The dense model of the MoE runs' shape: the closest active-parameter count (MoE adds only a router).
  moe_n = points.loc[points["experts"] > 1, "active_params"].min()
  dense = points[points["experts"] == 1]
  dense_n = dense["active_params"].iloc[(dense["active_params"] - moe_n).abs().argmin()]
  same_shape = pd.concat([dense[dense["active_params"] == dense_n], points[points["experts"] > 1]])
  rows = []
  for tokens in sorted(same_shape["tokens"].unique()):
    at = same_shape[same_shape["tokens"] == tokens]
    by_e = {int(e): float(g["loss"].iloc[0]) for e, g in at[at["granularity"] == 1].groupby("experts")}
    if 1 in by_e and 8 in by_e:
      rows.append(
        [
          "F1 MoE E=8 − dense",
          f"D={tokens:.3g}",
          f"{by_e[8] - by_e[1]:+.4f}",
          "MoE better" if by_e[8] < by_e[1] else "dense better",
        ]
      )
  top = same_shape[(same_shape["tokens"] == same_shape["tokens"].max()) & (same_shape["granularity"] == 1)]
  losses = [float(top[top["experts"] == e]["loss"].iloc[0]) for e in sorted(top["experts"].unique())]
  falling = all(b < a for a, b in zip(losses, losses[1:]))
  rows.append(["F2 loss over E", "E=" + ",".join(str(int(e)) for e in sorted(top["experts"].unique())),
               " ".join(f"{v:.4f}" for v in losses), "falls" if falling else "does not fall"])  # fmt: skip
  low, high = (moe_fit.intervals or {}).get("gamma", (float("nan"), float("nan")))
  gamma = moe_fit.params["gamma"]
  rows.append(["F5 Wang γ", f"95% [{low:.3g}, {high:.3g}]", f"{gamma:.4g}",
               "more experts help" if low > 0 else "interval includes 0 or below"])  # fmt: skip
  return rows


def run(root: str = "runs", out: str = "demo-results", *, workers: int = 1, bootstrap: int = 200,
        echo: Callable = console.console.print) -> int:  # fmt: skip
  """The demo; returns the exit status (0 done, 75 interrupted: rerun to resume, 1 a run failed)."""
  from mixlaws import plots

  start = time.time()
  os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the embedded default; inherited by the workers
  os.makedirs(out, exist_ok=True)
  echo(f"[bold]mixlaws demo[/]: the {STUDY} study on this machine's standard-library sources, byte tokens, CPU")
  _stage(echo, 1, "train (rerunning skips finished runs; Ctrl-C stops, rerun resumes)")
  code = train(root, workers, echo)
  if code != 0:
    echo("interrupted: rerun `make demo` to resume" if code == 75 else "a run failed: see `mixlaws status smoke`")
    return code
  _stage(echo, 2, "collect into the results store")
  report = collect.collect(root, STUDY)
  echo(report.summary())
  outputs: dict[str, str] = {"runs": os.fspath(sweep.study_dir(root, STUDY)), "results store": store.default_path(root)}
  with store.open(root) as st:
    _stage(echo, 3, "loss table")
    table = export.loss_table(st, STUDY)
    echo(export.to_markdown(table), markup=False)
    for fmt, suffix in (("csv", "csv"), ("latex", "tex")):
      outputs[f"loss table ({fmt})"] = path = os.path.join(out, f"loss_table.{suffix}")
      export.write(table, fmt, path)
    _stage(echo, 4, f"fit a dense law and an MoE law ({bootstrap} bootstrap resamples each)")
    points = fit_study.from_store(st, STUDY, "chinchilla")
    dense_fit, outputs["dense fit"] = fit_law(DENSE_LAW, points[points["experts"] == 1], bootstrap, out, echo)
    moe_fit, outputs["MoE fit"] = fit_law(MOE_LAW, points, bootstrap, out, echo)
    _stage(echo, 5, "plots")
    plot_dir = os.path.join(out, "plots")
    figures = plots.curves(
      st.curves(STUDY, split="train", names=("loss",)), plot_dir, runs=st.runs(STUDY), title=f"{STUDY}: training loss"
    )
    figures += plots.fit(laws.get(DENSE_LAW), dense_fit, points[points["experts"] == 1], plot_dir, name="fit_dense")
    figures += plots.fit(laws.get(MOE_LAW), moe_fit, points, plot_dir, name="fit_moe")
    figures += plots.residuals(laws.get(MOE_LAW), moe_fit, points, plot_dir, name="residuals_moe")
  outputs["plots"] = ", ".join(figures)
  outputs["report"] = _report(root, out, [dense_fit, moe_fit])  # last: the page to open
  echo("")
  console.print_table("findings (single seed; the README explains the table)", ["finding", "where", "measured",
                      "reading"], findings(points, moe_fit))  # fmt: skip
  echo("")
  echo(f"[bold green]done in {time.time() - start:.0f} s.[/] Outputs:")
  for name, path in outputs.items():
    echo(f"  {name}: {path}")
  return 0


def _report(root: str, out: str, fits: list[fitter.Fit]) -> str:
  """The study's one-page HTML report (mixlaws/report), from the fits above; returns its path."""
  from mixlaws.report import study as report_study

  with store.open(root) as st:
    return report_study.write(st, STUDY, os.path.join(out, "report.html"), law_names=(), fits=fits)
