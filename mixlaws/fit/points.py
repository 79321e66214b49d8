"""Fitting input from the results store: run rows → the columns the laws read, per counting convention.

The store's `final_losses` gives one row per run with counting columns for every convention
(`params_<conv>`, `active_params_<conv>`, `flops_<conv>`); a law reads `params`, `active_params`,
`tokens`, `flops`, `experts`, `granularity`, `loss` and `label` (DESIGN.md, "Fitting input").
"""

from __future__ import annotations

import pandas as pd

from mixlaws import counting

REQUIRED = ("tokens", "loss")


def from_runs(runs: pd.DataFrame, convention: str) -> pd.DataFrame:
  """Maps store rows to fitting columns with N, N_act and FLOPs counted under `convention`.

  experts is the expansion rate E (total over active parameters of an MoE layer, 1 for dense):
  Krajewski et al.'s E, and Ludziejewski et al.'s number of experts at granularity 1.
  """
  if convention not in counting.CONVENTIONS:
    raise ValueError(f"convention: unknown {convention!r}; expected one of {', '.join(counting.CONVENTIONS)}")
  needed = [*REQUIRED, f"params_{convention}", f"active_params_{convention}", f"flops_{convention}"]
  missing = [c for c in needed if c not in runs.columns]
  if missing:
    raise ValueError(f"runs: lack column(s) {', '.join(missing)}")
  out = pd.DataFrame(
    {
      "params": runs[f"params_{convention}"].astype(float),
      "active_params": runs[f"active_params_{convention}"].astype(float),
      "tokens": runs["tokens"].astype(float),
      "flops": runs[f"flops_{convention}"].astype(float),
      "experts": runs["expansion_rate"].astype(float) if "expansion_rate" in runs else 1.0,
      "granularity": runs["granularity"].astype(float) if "granularity" in runs else 1.0,
      "loss": runs["loss"].astype(float),
      "label": runs["run_id"].astype(str) if "run_id" in runs else runs.index.astype(str),
    },
    index=runs.index,
  )
  if "router" in runs:
    out["router"] = runs["router"]
  return out.dropna(subset=["loss"]).reset_index(drop=True)
