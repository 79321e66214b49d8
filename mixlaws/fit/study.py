"""What `mixlaws fit`, `optimal` and `plot` do, as functions: load points, fit, allocate, plot."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mixlaws.fit import fitter, isoflop, laws, optimal, points, steplaw

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
  "Acc": "accuracy",
  "acc": "accuracy",
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


def read_csv(path: str, mapping: Mapping[str, str], law: laws.Law | None = None) -> pd.DataFrame:
  """Fitting points from any CSV: the mapped columns renamed, every other column kept.

  With `law`, the columns it reads must hold positive finite numbers (its target finite, and positive
  for log-space residuals); a bad cell is named by file, column and row (1 = the first after the header).
  """
  try:
    frame = pd.read_csv(path)
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not a text CSV (byte {e.start} is not UTF-8)") from None
  except pd.errors.EmptyDataError:
    raise ValueError(f"{path}: empty, no header row") from None
  except (OSError, pd.errors.ParserError) as e:
    raise ValueError(f"{path}: cannot read as CSV ({str(e).strip()})") from None
  missing = [c for c in mapping.values() if c not in frame.columns]
  if missing:
    raise ValueError(f"{path}: no column(s) {', '.join(missing)} (it has {', '.join(map(str, frame.columns))})")
  frame = frame.rename(columns={v: k for k, v in mapping.items()})
  if law is not None:
    # Raw accuracy (mapped as acc=COLUMN) becomes the target later (accuracy_points, which checks it itself).
    from_accuracy = law.target == "neg_log_accuracy" and law.target not in frame.columns and "accuracy" in frame.columns
    for column in (*law.columns, *(() if from_accuracy else (law.target,))):
      positive = column in law.columns or law.residual == "log"
      frame[column] = _numeric_column(path, frame, column, mapping.get(column, column), positive)
  return frame


def _numeric_column(path: str, frame: pd.DataFrame, column: str, csv_name: str, positive: bool) -> pd.Series:
  """The column as float64, or a ValueError naming the file, the CSV column and the first bad row."""
  if column not in frame.columns:
    raise ValueError(f"{path}: no column {csv_name!r} for {column} (map one with --map {column}=COLUMN)")
  raw = frame[column]
  values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
  good = np.isfinite(values) & ((values > 0) if positive else True)
  if len(frame) == 0:
    raise ValueError(f"{path}: no rows under the header")
  if not good.all():
    row = int(np.flatnonzero(~good.to_numpy())[0])
    cell, value = raw.iloc[row], values.iloc[row]
    shown = repr(cell) if isinstance(cell, str) else f"{value:g}"
    reason = ("is empty or NaN" if pd.isna(cell) else f"{shown} is not a number" if np.isnan(value)
              else f"{shown} is not finite" if not np.isfinite(value) else f"{shown} is not positive")  # fmt: skip
    raise ValueError(f"{path}: column {csv_name!r}, row {row + 1}: {reason}")
  return values


def from_store(st, study: str, convention: str, loss: str = "final_eval", window: int | float = 0.01) -> pd.DataFrame:
  """A study's finished runs as fitting points under `convention`."""
  runs = st.final_losses(study, loss=loss, window=window)
  if runs.empty:
    raise ValueError(f"study {study}: no finished run has a {loss} loss in the store")
  frame = points.from_runs(runs, convention)
  # WSD trunks: their losses come from mid-run (no cooldown), so they are never points; say so.
  frame.attrs["trunks_left_out"] = runs.attrs.get("trunks", 0)
  return frame


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


def _fit_record(path: str) -> dict[str, Any] | None:
  """The fit record of a fit.json written by `mixlaws fit` (its "fit" key, or the whole file); None if not a dict."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"{path}: cannot read a fit ({e})") from e
  fit = data.get("fit", data) if isinstance(data, dict) else None
  return fit if isinstance(fit, dict) else None


def load_steplaw_fit(path: str) -> steplaw.StepLawFit:
  """The Step Law fit in a fit.json written by `mixlaws fit --law steplaw`."""
  fit = _fit_record(path)
  if fit is None or fit.get("law") != "steplaw":
    raise ValueError(f"--fit: {path} holds a {(fit or {}).get('law') or 'non-fit'} fit, not steplaw")
  try:
    return steplaw.StepLawFit.from_dict(fit)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{path}: {e}") from e


def load_fit(path: str) -> fitter.Fit:
  """The fit in a fit.json written by `mixlaws fit`."""
  fit = _fit_record(path)
  if fit is None or "params" not in fit or "law" not in fit:
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


# Laws `mixlaws optimal` answers beyond allocation(): what each optimises, and from which inputs.
OPTIMA = {
  "wang2024": "N_act, D at --budget for each candidate E (the best E marked)",
  "gadre2024": "N, D at --budget",
  "clark2022": "the loss of each candidate E at --params N_act (the fit's fixed D)",
  "compute": "the compute-optimal budget C reaching the --target loss",
  "downstream_power": "the budget C reaching the --target accuracy (chance-corrected with --chance)",
  "downstream_ceiling": "the budget C reaching the --target accuracy below the ceiling",
  "downstream_tpr": "the least budget C (and its N, D) reaching the --target accuracy",
}


def _optimum_rows(law: str, p: Mapping[str, float], inputs: Mapping[str, Any]) -> list[dict[str, float]]:
  """The optimum of one coefficient set, as rows of numbers (one per candidate E where E varies)."""

  def need(name: str, flag: str):
    if inputs.get(name) is None:
      raise ValueError(f"{flag}: the {law} law needs it ({OPTIMA[law]})")
    return inputs[name]

  if law == "wang2024":
    budget = need("budget", "--budget")
    return [
      {"experts": e, "active_params": a.active_params, "tokens": a.tokens, "loss": a.loss}
      for e in inputs["experts"]
      for a in (optimal.wang(p, budget, e),)
    ]
  if law == "gadre2024":
    a = optimal.gadre(p, need("budget", "--budget"))
    return [{"params": a.params, "tokens": a.tokens, "loss": a.loss}]
  if law == "clark2022":
    n = need("active_params", "--params")
    return [{"experts": e, "loss": optimal.clark_loss(p, n, e)} for e in inputs["experts"]]
  if law == "compute":
    target = need("target", "--target")
    return [{"flops": optimal.flops_for_loss(p, target), "loss": target}]
  target = need("target", "--target")
  a = optimal.downstream_flops(law, p, target, inputs.get("chance") or 0.0)
  row = {"flops": a.flops, "accuracy": target}
  if law == "downstream_tpr":
    row.update(params=a.params, tokens=a.tokens)
  return [row]


def optimum(law: laws.Law, result: fitter.Fit | Mapping[str, float], **inputs) -> pd.DataFrame:
  """What `law` optimises (OPTIMA), with percentile intervals over the fit's bootstrap replicates.

  inputs: budget, active_params, target, chance, experts (candidates). Columns `<q>_lo`, `<q>_hi`
  hold the interval of each quantity q at the fit's `ci`; `best` marks the lowest-loss candidate E,
  and `best_share` the fraction of replicates whose best E is that row's.
  """
  if law.name not in OPTIMA:
    raise ValueError(f"--law: {law.name} has no optimum here ({', '.join(OPTIMA)} do)")
  params = result.params if isinstance(result, fitter.Fit) else result
  inputs = {"experts": (1, 2, 4, 8, 16, 32), **inputs}
  frame = pd.DataFrame(_optimum_rows(law.name, params, inputs))
  varies = "experts" in frame and "loss" in frame and len(frame) > 1
  if varies:
    frame["best"] = frame["loss"] == frame["loss"].min()
  samples = result.samples if isinstance(result, fitter.Fit) else None
  if samples:
    replicas = []
    for s in samples:
      try:
        replicas.append(pd.DataFrame(_optimum_rows(law.name, s, inputs)))
      except ValueError:
        continue  # a replicate whose law never reaches the target: left out of the interval
    if replicas:
      lo_q, hi_q = 50 * (1 - result.ci), 50 * (1 + result.ci)
      for column in frame.columns:
        if column in ("experts", "best", "accuracy") or (column == "loss" and law.name == "compute"):
          continue
        values = np.stack([r[column].to_numpy(np.float64) for r in replicas])
        frame[f"{column}_lo"] = np.percentile(values, lo_q, axis=0)
        frame[f"{column}_hi"] = np.percentile(values, hi_q, axis=0)
      if varies:
        best = np.array([np.argmin(r["loss"].to_numpy()) for r in replicas])
        frame["best_share"] = [float(np.mean(best == i)) for i in range(len(frame))]
      frame.attrs["replicates"] = len(replicas)
  return frame


def steplaw_points(frame: pd.DataFrame, seq_len: int | None = None) -> pd.DataFrame:
  """CSV points for the Step Law: the batch column counted in tokens (× `seq_len` if it counts sequences)."""
  if seq_len is not None:
    if seq_len < 1:
      raise ValueError(f"--seq-len: must be positive, got {seq_len}")
    if "batch" in frame:
      frame = frame.assign(batch=pd.to_numeric(frame["batch"], errors="coerce") * seq_len)
  return frame


def steplaw_from_store(st, study: str, convention: str, loss: str = "final_eval", window: int | float = 0.01):
  """A study's finished runs as Step Law points: lr, batch in tokens (batch_size × seq_len), experts."""
  runs = st.final_losses(study, loss=loss, window=window)
  if runs.empty:
    raise ValueError(f"study {study}: no finished run has a {loss} loss in the store")
  frame = points.from_runs(runs, convention)
  frame["lr"] = runs["lr"].astype(float).to_numpy()
  frame["batch"] = (runs["batch_size"] * runs["seq_len"]).astype(float).to_numpy()
  # Runs of one token budget differ slightly in trained tokens (whole steps per batch size): one group.
  frame["tokens"] = isoflop.snap_budgets(frame["tokens"], per_decade=100)
  return frame


def steplaw_report(frame: pd.DataFrame, *, bootstrap: int = 0, seed: int = 0) -> dict[str, Any]:
  """The Step Law per family ("all" without an experts column, else E=1, E=8, …) and, where the points
  hold several families, their per-group optima side by side with intervals (`steplaw.families`)."""
  several = "experts" in frame and frame["experts"].nunique() > 1
  parts = frame.groupby("experts") if several else [("all", frame)]
  fits = {}
  for name, part in parts:
    key = name if name == "all" else f"E={name:g}"
    try:
      fits[key] = {"fit": steplaw.fit(part, bootstrap=bootstrap, seed=seed).to_dict(), "error": None}
    except ValueError as e:
      fits[key] = {"fit": None, "error": str(e)}
  if not several and fits["all"]["fit"] is None:
    raise ValueError(fits["all"]["error"])
  families = steplaw.families(frame, bootstrap=max(bootstrap, 50), seed=seed) if several else None
  return {"fits": fits, "families": families}


def accuracy_points(frame: pd.DataFrame, chance: float | None, mapping: Mapping[str, str]) -> pd.DataFrame:
  """CSV points for a downstream law: raw `accuracy` becomes −ln Acc' (chance-corrected); a column that
  does not look like what it is mapped as is refused, naming it."""
  if "accuracy" in frame and "neg_log_accuracy" in frame:
    raise ValueError("--map: map either accuracy=COLUMN (raw) or neg_log_accuracy=COLUMN, not both")
  if "accuracy" in frame:
    name = mapping.get("accuracy", "accuracy")
    acc = pd.to_numeric(frame["accuracy"], errors="coerce").to_numpy(np.float64)
    floor = chance or 0.0
    if chance is not None and not 0 <= chance < 1:
      raise ValueError(f"--chance: must lie in [0, 1), got {chance:g}")
    if np.any(~np.isfinite(acc)) or np.any(acc > 1) or np.any(acc <= floor):
      bad = acc[~(np.isfinite(acc) & (acc <= 1) & (acc > floor))][0]
      raise ValueError(f"column {name}: {bad:g} does not look like an accuracy above chance (every value must "
                       f"lie in ({floor:g}, 1]; is it a percentage or a loss?)")  # fmt: skip
    x = next((c for c in ("flops", "params", "tokens") if c in frame), None)
    # Accuracy rises with scale: a mapped column that falls is an error rate or a loss.
    if x is not None and frame[x].nunique() > 2 and pd.Series(acc).corr(frame[x].astype(float), method="spearman") < 0:
      raise ValueError(
        f"column {name}: falls as {mapping.get(x, x)} grows, as an error rate or a loss does, not an accuracy"
      )
    return frame.assign(neg_log_accuracy=laws.neg_log_accuracy(acc, floor))
  if "neg_log_accuracy" in frame:
    name = mapping.get("neg_log_accuracy", "neg_log_accuracy")
    y = pd.to_numeric(frame["neg_log_accuracy"], errors="coerce").to_numpy(np.float64)
    if np.any(~(y > 0)):
      raise ValueError(f"column {name}: −ln Acc must be positive; map raw accuracy as accuracy={name} instead")
    if chance is not None:
      raise ValueError("--chance: converts raw accuracy; map it as accuracy=COLUMN (neg_log_accuracy is converted)")
    x = next((c for c in ("flops", "params", "tokens") if c in frame), None)
    # Accuracy rises with scale, so −ln Acc falls: a mapped column that rises is raw accuracy.
    if x is not None and frame[x].nunique() > 2 and pd.Series(y).corr(frame[x].astype(float), method="spearman") > 0:
      raise ValueError(f"column {name}: rises with {mapping.get(x, x)}, as raw accuracy does, not −ln Acc; "
                       f"map it as accuracy={name} (with --chance)")  # fmt: skip
    return frame
  raise ValueError("--map: a downstream law needs accuracy=COLUMN (raw accuracy, with --chance) or "
                   "neg_log_accuracy=COLUMN")  # fmt: skip
