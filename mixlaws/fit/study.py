"""What `mixlaws fit`, `optimal` and `plot` do, as functions: load points, fit, allocate, plot."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mixlaws.fit import fitter, isoflop, laws, optimal, points

# Short names accepted on the command line for the fitting columns.
ALIASES = {
  "N": "params",
  "N_act": "active_params",
  "D": "tokens",
  "C": "flops",
  "F": "flops",
  "E": "experts",
  "G": "granularity",
  "U": "unique_tokens",
  "L": "loss",
}


def parse_map(text: str) -> dict[str, str]:
  """'N=params,D=tokens,loss=val_loss' → {fitting column: CSV column}."""
  out = {}
  for item in filter(None, (part.strip() for part in text.split(","))):
    if "=" not in item:
      raise ValueError(f"--map: {item!r} is not NAME=COLUMN")
    name, column = (s.strip() for s in item.split("=", 1))
    out[ALIASES.get(name, name)] = column
  return out


def read_csv(path: str, mapping: Mapping[str, str]) -> pd.DataFrame:
  """Fitting points from any CSV: the mapped columns renamed, every other column kept."""
  try:
    frame = pd.read_csv(path)
  except (OSError, pd.errors.ParserError) as e:
    raise ValueError(f"{path}: cannot read as CSV ({e})") from e
  missing = [c for c in mapping.values() if c not in frame.columns]
  if missing:
    raise ValueError(f"{path}: no column(s) {', '.join(missing)} (it has {', '.join(map(str, frame.columns))})")
  return frame.rename(columns={v: k for k, v in mapping.items()})


def from_store(st, study: str, convention: str, loss: str = "final_eval", window: int | float = 0.01) -> pd.DataFrame:
  """A study's finished runs as fitting points under `convention`."""
  runs = st.final_losses(study, loss=loss, window=window)
  if runs.empty:
    raise ValueError(f"study {study}: no finished run has a {loss} loss in the store")
  return points.from_runs(runs, convention)


def metric_from_store(st, study: str, metric: str, convention: str, chance: float | None = None) -> pd.DataFrame:
  """Finished runs with a downstream metric (e.g. line_end/acc) as points of the accuracy laws.

  `neg_log_accuracy` is −ln of the chance-corrected accuracy (arXiv 2512.08894, PAPERS.md §6.1);
  the chance level defaults to the `<task>/chance` the evaluation logged beside the accuracy.
  """
  runs = st.runs(study)
  values = st.metric_at_end(study, metric, split="downstream")
  merged = runs[runs["state"] == "done"].merge(values[["run_id", "value"]], on="run_id")
  if merged.empty:
    raise ValueError(f"study {study}: no finished run has the downstream metric {metric} (run `mixlaws eval` first)")
  if chance is None:
    logged = st.metric_at_end(study, f"{metric.rsplit('/', 1)[0]}/chance", split="downstream")
    chance = float(logged["value"].mean()) if not logged.empty else 0.0
  frame = points.from_runs(merged.assign(loss=merged["value"]), convention)
  frame = frame.rename(columns={"loss": "accuracy"})
  frame["neg_log_accuracy"] = laws.neg_log_accuracy(frame["accuracy"], chance)
  frame.attrs["chance"] = chance
  return frame


def holdout_mask(frame: pd.DataFrame, expr: str, target: str = "loss") -> np.ndarray:
  """'lowest:K' (the K lowest-`target` points) or a pandas query selecting the held-out points."""
  match = re.fullmatch(r"lowest:(\d+)", expr.strip())
  if match:
    return fitter.lowest(frame, int(match.group(1)), column=target)
  try:
    held = frame.eval(expr)
  except Exception as e:  # pandas raises many types for a bad expression
    raise ValueError(f"--holdout: cannot evaluate {expr!r} ({e})") from e
  if not isinstance(held, pd.Series) or held.dtype != bool:
    raise ValueError(f"--holdout: {expr!r} must be a condition on the columns, e.g. 'params > 1e9'")
  return held.to_numpy()


def start_subset(law: laws.Law, count: int, seed: int = 0) -> np.ndarray:
  """`count` starts drawn without replacement from the law's default grid (a quicker, rougher fit)."""
  grid = law.grid()
  if count < 1:
    raise ValueError(f"--starts: must be positive, got {count}")
  if count >= len(grid):
    return grid
  return grid[np.sort(np.random.default_rng(seed).choice(len(grid), count, replace=False))]


def fit_report(
  law: laws.Law,
  frame: pd.DataFrame,
  *,
  bootstrap: int = 0,
  holdout: str | None = None,
  seed: int = 0,
  starts: int | None = None,
) -> dict[str, Any]:
  """Fits the law (after holding out points, if asked) and returns a JSON-ready report."""
  report: dict[str, Any] = {"law": law.name, "formula": law.formula}
  init = start_subset(law, starts, seed) if starts else None
  if holdout:
    test = holdout_mask(frame, holdout, law.target)
    held = fitter.holdout(law, frame, test, bootstrap=bootstrap, seed=seed, init=init)
    result = held.fit
    report["holdout"] = {
      "expr": holdout,
      "n_train": held.n_train,
      "n_test": held.n_test,
      "rmse": held.rmse,
      "max_error": held.max_error,
      "train_rmse": held.train_rmse,
    }
  else:
    result = fitter.fit(law, frame, bootstrap=bootstrap, seed=seed, init=init)
  report["fit"] = result.to_dict()
  return report


def load_fit(path: str) -> fitter.Fit:
  """The fit in a fit.json written by `mixlaws fit`."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"{path}: cannot read a fit ({e})") from e
  fit = data.get("fit", data) if isinstance(data, dict) else None
  if not isinstance(fit, dict) or "params" not in fit or "law" not in fit:
    raise ValueError(f"{path}: not a fit.json (no law and params)")
  try:
    return fitter.Fit.from_dict(fit)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{path}: {e}") from e


def parse_bytes(text: str) -> float:
  """'80GB' → 8e10, '24GiB' → 24·2^30, '1e9' → 1e9 bytes."""
  match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([KMGT]i?B|B)?\s*", text)
  if not match:
    raise ValueError(f"--memory: {text!r} is not a size such as 80GB or 24GiB")
  unit = match.group(2) or "B"
  scale = 1024 if "i" in unit else 1000
  power = "BKMGT".index(unit[0]) if unit != "B" else 0
  return float(match.group(1)) * scale**power


def allocation(
  law: laws.Law,
  params: Mapping[str, float],
  budget: float,
  *,
  memory_bytes: float | None = None,
  kv_tokens: float = 0.0,
  inference_tokens: float = 0.0,
  experts: Sequence[int] = (1, 2, 4, 8, 16, 32),
  expansion_rate: int = 64,
) -> tuple[optimal.Allocation, list[optimal.Allocation]]:
  """The compute-optimal allocation at `budget` for a law, and the candidates it was chosen from."""
  constrained = memory_bytes is not None or kv_tokens or inference_tokens
  if law.name == "chinchilla":
    if constrained:
      raise ValueError("--memory/--kv-tokens/--inference-tokens: only the ludziejewski2025 law models them")
    best = optimal.chinchilla(params, budget)
    return best, [best]
  if law.name == "krajewski2024":
    if constrained:
      raise ValueError("--memory/--kv-tokens/--inference-tokens: only the ludziejewski2025 law models them")
    table = [optimal.krajewski_at(params, budget, expansion_rate, g) for g in (1, 2, 4, 8, 16, 32, 64, 128)]
    return min(table, key=lambda a: a.loss), table
  if law.name == "ludziejewski2025":
    if constrained:
      return optimal.best_experts(
        params, budget, experts, memory_bytes=memory_bytes, kv_tokens=kv_tokens, inference_tokens=inference_tokens
      )
    table = [optimal.joint(params, budget, e) for e in experts]
    return min(table, key=lambda a: a.loss), table
  raise ValueError(
    f"--law: {law.name} has no compute-optimal allocation (chinchilla, krajewski2024, ludziejewski2025 do)"
  )


def plot(kind: str, st, study: str, out_dir: str, *, law_name: str = "chinchilla", convention: str | None = None,
         loss: str = "final_eval", window: int | float = 0.01, fit_path: str | None = None) -> list[str]:  # fmt: skip
  """Draws one kind of figure for a study from the store; returns the files written."""
  from mixlaws import plots

  if kind == "curves":
    frame = st.curves(study, split="train", names=("loss",))
    if frame.empty:
      raise ValueError(f"study {study}: no train loss curves in the store")
    return plots.curves(frame, out_dir, runs=st.runs(study), title=f"{study}: training loss per run")
  law = laws.get(law_name)
  frame = from_store(st, study, convention or law.convention or "chinchilla", loss, window)
  if kind == "isoflop":
    frame = frame.assign(flops=isoflop.snap_budgets(frame["flops"]))
    return plots.isoflop(frame, isoflop.minima(frame), out_dir)
  if fit_path:
    result = load_fit(fit_path)
    if result.law != law.name:
      raise ValueError(f"--fit: {fit_path} holds a {result.law} fit, not {law.name}")
  else:
    result = fitter.fit(law, frame)
  if kind == "fit":
    return plots.fit(law, result, frame, out_dir)
  if kind == "residuals":
    return plots.residuals(law, result, frame, out_dir)
  if kind == "optimal":
    largest = float(frame["flops"].max())
    grid = np.unique(np.append(plots.budgets(largest / 10, largest * 1e4), largest))
    table = [allocation(law, result.params, c)[0] for c in grid]
    return plots.optimal(plots.allocation_table(table), out_dir, observed_flops=largest, title=f"{study}: {law.name}")
  raise ValueError(f"--kind: unknown {kind!r}; expected one of {', '.join(plots.KINDS)}")
