"""`mixlaws next`: a study's planned runs as a pool, its finished runs as observations, the next runs to train.

Glue between the registry (the plan), the finished points (from the store, read by the caller) and the
selection maths in mixlaws.fit.design.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from mixlaws.fit import design, laws, optimal


def pool(specs: Sequence, convention: str) -> pd.DataFrame:
  """One row per planned run: run_id and the fitting columns under `convention`."""
  rows = []
  for spec in specs:
    counts = spec.counts.to_dict()
    rows.append(
      {
        "run_id": spec.run_id,
        "params": float(counts[f"params_{convention}"]),
        "active_params": float(counts[f"active_params_{convention}"]),
        "tokens": float(counts["tokens"]),
        "flops": float(counts[f"flops_{convention}"]),
        "experts": float(spec.config.moe.expansion_rate),
        "granularity": float(spec.config.moe.granularity),
      }
    )
  return pd.DataFrame(rows)


def observe(plan: pd.DataFrame, done: pd.DataFrame, target: str = "loss") -> pd.DataFrame:
  """The plan with the finished runs' `target` filled in (NaN where not run), matched by run id (`label`)."""
  measured = dict(zip(done["label"], done[target])) if len(done) else {}
  out = plan.copy()
  out[target] = [measured.get(r, np.nan) for r in plan["run_id"]]
  return out


GRANULARITIES = (1, 2, 4, 8, 16, 32)


def target(law: laws.Law, frame: pd.DataFrame, text: str, theta: np.ndarray | None):
  """The design target named by `text`, and a one-line description.

  loss: the loss of the planned runs at the largest budget. coef:NAME: one coefficient (fitting space).
  optimal:C: the compute-optimal allocation at C FLOPs: ln N_opt for chinchilla (Hoffmann et al. 2022,
  Eq. 4), ln N_opt at each granularity for krajewski2024 (Eq. 10 budget, §5).
  """
  kind, _, arg = text.partition(":")
  if kind == "loss" and not arg:
    top = frame[frame["flops"] >= frame["flops"].max() * (1 - 1e-9)]
    return {c: top[c].to_numpy(np.float64) for c in law.columns}, f"loss of the {len(top)} largest-budget run(s)"
  if kind == "coef":
    if arg not in law.params:
      raise ValueError(f"--target: {arg!r} is not a parameter of {law.name} ({', '.join(law.params)})")
    i = law.params.index(arg)
    return (lambda th: float(th[i])), f"coefficient {arg}"
  if kind == "optimal":
    try:
      flops = float(arg)
    except ValueError:
      raise ValueError(f"--target: optimal:C needs a FLOPs number, got {arg!r}") from None
    if law.name == "chinchilla":

      def ln_n_opt(th):
        p = law.natural(dict(zip(law.params, th)))
        g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
        return math.log(g) + p["beta"] / (p["alpha"] + p["beta"]) * math.log(flops / 6)

      return ln_n_opt, f"ln N_opt at C = {flops:.3g}"
    if law.name == "krajewski2024":
      experts = int(frame["experts"].max())

      def ln_n_opt(th):
        p = law.natural(dict(zip(law.params, th)))
        return np.array([math.log(optimal.krajewski_at(p, flops, experts, g).params) for g in GRANULARITIES])

      return ln_n_opt, f"ln N_opt at each G in {GRANULARITIES} at C = {flops:.3g}"
    raise ValueError(f"--target: optimal:C is defined for chinchilla and krajewski2024, not {law.name}")
  raise ValueError(f"--target: {text!r}; expected loss, optimal:C (e.g. optimal:1e21) or coef:NAME")


def propose(
  law: laws.Law,
  frame: pd.DataFrame,
  target_text: str,
  k: int,
  budget: float | None,
  seed: int = 0,
  cost_power: float = 1.0,
) -> tuple[pd.DataFrame, dict]:
  """The next ≤ k runs of `frame` (the plan with measured losses, NaN = not run) and a summary of why."""
  if law.target not in frame:
    raise ValueError(f"pool: lacks the {law.target} column")
  observed = frame[law.target].notna().to_numpy()
  sp = design.space(law, frame, frame["flops"].to_numpy(np.float64))
  rng = np.random.default_rng(seed)
  budget = float(sp.cost[~observed].sum()) if budget is None else budget
  theta = None
  if observed.sum() >= len(law.params):
    theta, _ = design.fit(sp, observed, rng)
  goal, description = target(law, frame, target_text, theta)
  proposal = design.propose(sp, observed, goal, k, budget, rng, theta=theta, cost_power=cost_power)
  chosen = frame.iloc[proposal.indices][["run_id", "flops"]].copy()
  chosen["reason"] = proposal.reason
  chosen["variance_after"] = proposal.variance_after
  summary = {
    "target": description,
    "observed": int(observed.sum()),
    "pool": len(frame),
    "variance_now": proposal.variance_now,
    "flops_chosen": float(chosen["flops"].sum()),
    "theta": None if proposal.theta is None else law.natural(dict(zip(law.params, proposal.theta))),
  }
  return chosen.reset_index(drop=True), summary


def simulate(
  law: laws.Law,
  plan: pd.DataFrame,
  losses: np.ndarray,
  target_text: str,
  share: float,
  batch: int = 4,
  seed: int = 0,
  cost_power: float = 1.0,
) -> np.ndarray:
  """Adaptive selection against known losses: propose, 'train' (reveal the loss), repeat until `share` of
  the pool's FLOPs is spent; returns the mask of runs bought. What `run --adaptive` does, without training."""
  frame = plan.copy()
  frame[law.target] = np.nan
  budget = share * float(plan["flops"].sum())
  spent = 0.0
  while True:
    chosen, _ = propose(law, frame, target_text, batch, budget - spent, seed=seed, cost_power=cost_power)
    if chosen.empty:
      break
    idx = frame.index[frame["run_id"].isin(chosen["run_id"])]
    frame.loc[idx, law.target] = losses[idx]
    spent += float(chosen["flops"].sum())
  return frame[law.target].notna().to_numpy()


def finished(root: str, study: str, convention: str, store_path: str | None = None) -> pd.DataFrame:
  """The study's finished runs (collected into the store first) as fitting points; empty when none."""

  from mixlaws import collect, store, sweep
  from mixlaws.fit import points

  empty = pd.DataFrame({"label": [], "loss": []})
  if not sweep.study_dir(root, study).exists():
    return empty
  collect.collect(root, study, store_path)
  with store.Store(store_path or store.default_path(root), create=False) as st:
    runs = st.final_losses(study)
  return empty if runs.empty else points.from_runs(runs, convention)


def run_adaptive(
  specs: Sequence,
  law: laws.Law,
  target_text: str,
  budget: float,
  train: Callable[[list], None],
  root: str,
  k: int = 4,
  convention: str | None = None,
  seed: int = 0,
  echo: Callable[[str], None] = print,
) -> pd.DataFrame:
  """Propose (`propose`), train (`train(specs)`), collect and refit until `budget` FLOPs are spent or
  nothing affordable is left; returns every round's choices (round, run_id, flops, reason)."""
  convention = convention or law.convention or "chinchilla"
  label = specs[0].study
  by_id = {spec.run_id: spec for spec in specs}
  plan = pool(specs, convention)
  rounds = []
  for round_ in itertools.count():
    frame = observe(plan, finished(root, label, convention))
    spent = float(frame.loc[frame[law.target].notna(), "flops"].sum())
    chosen, summary = propose(law, frame, target_text, k, budget - spent, seed=seed)
    if chosen.empty:
      echo(f"adaptive: {spent:.3g} of {budget:.3g} FLOPs spent on {summary['observed']} runs; nothing more fits")
      break
    echo(f"adaptive round {round_}: {len(chosen)} run(s), {chosen['flops'].sum():.3g} FLOPs, by {chosen['reason'][0]}")
    train([by_id[r] for r in chosen["run_id"]])
    rounds.append(chosen.assign(round=round_))
  return pd.concat(rounds, ignore_index=True) if rounds else pd.DataFrame(columns=["round", "run_id", "flops"])
