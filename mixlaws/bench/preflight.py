"""`mixlaws bench preflight`: the paper studies' largest runs on their declared slices, compiled for TPU here.

For each study the runs with the most parameters are planned on the slice the study declares
(`Study.slice`): the planner picks a mesh and remat policy, and the train step is compiled ahead of time
for that TPU topology with libtpu on this CPU machine (no TPU), which gives XLA's memory per device. The
ratio that the MoE targets speak of divides that memory by the memory of a dense model with the same
total parameters (the experts' width folded into one FFN of width E·d_ff), planned and compiled on the
same slice. Only compiled numbers count as measured; an analytic estimate is recorded beside them.

A 56B compile takes minutes and several GiB of host memory, so this is a benchmark, not a test.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from mixlaws import bench, planner, registry
from mixlaws.config import Config, MoEConfig

STUDIES = ("krajewski2024", "ludziejewski2025", "wang2024", "krajewski2025_50b")
LARGEST_FRACTION = 1.0  # "largest runs": those with the study's most parameters (1.0: exactly the most)
MAX_HBM_FRACTION = 0.9  # target: every run fits its declared slice at <= 90% of HBM
MAX_MOE_OVER_DENSE = 1.3  # target: MoE memory / equal-total dense memory on the same slice
GIB = 2**30


def largest_runs(specs: list[registry.RunSpec]) -> list[registry.RunSpec]:
  """The runs within LARGEST_FRACTION of the most parameters, one per distinct memory shape."""
  top = max(s.counts.params.total for s in specs)
  seen, out = set(), []
  for s in specs:
    key = (planner.memory_key(s.config), s.slice)
    if s.counts.params.total >= LARGEST_FRACTION * top and key not in seen:
      seen.add(key)
      out.append(s)
  return out


def dense_twin(cfg: Config) -> Config:
  """A dense model with the same total parameters: one FFN as wide as all routed experts together."""
  if not cfg.moe.is_moe:
    return cfg
  width = cfg.moe.n_experts * cfg.model.d_ff // cfg.moe.granularity
  moe = dataclasses.replace(MoEConfig(), top_k=1, capacity_factor=cfg.moe.capacity_factor)
  return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, d_ff=width), moe=moe)


def _measure(cfg: Config, where: planner.Slice, compile_fn, max_compiles: int) -> dict[str, Any]:
  start = time.perf_counter()
  try:
    plan = planner.plan_run(cfg, where, compile_fn, max_compiles=max_compiles)
  except Exception as e:  # a compile that fails is recorded, not hidden; the run counts as unmeasured
    estimate = planner.plan_run(cfg, where, None)
    return {"mesh": str(estimate.layout), "estimate_gib": round(estimate.estimate_bytes / GIB, 2), "gib": None,
            "measured": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}  # fmt: skip
  v = plan.compiled
  return {
    "mesh": str(plan.layout),
    "estimate_gib": round(plan.estimate_bytes / GIB, 2),
    "args_gib": round(v.argument_bytes / GIB, 2) if v and v.argument_bytes else None,  # None: compiler refused
    "temp_gib": round(v.temp_bytes / GIB, 2) if v else None,
    "gib": round(plan.bytes_per_device / GIB, 2),
    "measured": v is not None,
    "compile_s": round(time.perf_counter() - start, 1),
  }


def run(
  studies: tuple[str, ...] = STUDIES,
  max_compiles: int = 1,
  compile_runs: bool = True,
  log: Callable[[str], None] = print,
  cached_only: bool = False,
) -> dict[str, Any]:
  """One row per largest run: its slice, mesh, GiB per device against HBM, and MoE ÷ equal-total dense."""
  rows, dense_cache = [], {}
  for name in studies:
    for spec in largest_runs(registry.expand(name)):
      where = planner.parse_slice(spec.slice)
      compile_fn = planner.preflight_compiler(where, cached_only=cached_only) if compile_runs else None
      log(f"{spec.run_id} on {spec.slice} ({where.topology}) …")
      moe = _measure(spec.config, where, compile_fn, max_compiles)
      dense = {}
      if spec.config.moe.is_moe:
        twin = dense_twin(spec.config)
        key = (planner.memory_key(twin), spec.slice)
        if key not in dense_cache:
          log(f"  dense twin on {spec.slice} …")
          dense_cache[key] = _measure(twin, where, compile_fn, max_compiles)
        dense = dense_cache[key]
      hbm = where.memory_bytes / GIB
      row = {
        "study": name,
        "run_id": spec.run_id,
        "params_total": int(spec.counts.params.total),
        "moe": spec.config.moe.is_moe,
        "slice": where.label,
        "topology": where.topology,
        "hbm_gib": round(hbm, 2),
        **{k: moe.get(k) for k in ("mesh", "args_gib", "temp_gib", "gib", "estimate_gib", "measured", "compile_s")},
        "hbm_fraction": round(moe["gib"] / hbm, 3) if moe.get("gib") is not None else None,
        "dense_mesh": dense.get("mesh"),
        "dense_gib": dense.get("gib"),
        "dense_measured": dense.get("measured", False),
        "moe_over_dense": round(moe["gib"] / dense["gib"], 3) if moe.get("gib") and dense.get("gib") else None,
        "error": moe.get("error") or dense.get("error") or "",
      }
      log(f"  {row['mesh']}: {row['gib']} GiB of {hbm:.0f} ({row['hbm_fraction']}), dense {row['dense_gib']} GiB, "
          f"ratio {row['moe_over_dense']}")  # fmt: skip
      rows.append(row)
  return {"machine": bench.machine(), "targets": targets(rows), "runs": rows}


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Each target over the rows that were measured (compiled); `met` is None when none were."""
  out = []

  def add(name: str, target: str, values: list[tuple[bool, float]], ok: Callable[[float], bool]) -> None:
    measured = [v for m, v in values if m and v is not None]
    worst = max(measured) if measured else None
    out.append({"figure": name, "target": target, "worst": worst, "measured_runs": len(measured),
                "runs": len(values), "met": None if not measured else all(ok(v) for v in measured)})  # fmt: skip

  add("GiB per device ÷ HBM of the declared slice", f"<= {MAX_HBM_FRACTION}",
      [(r["measured"], r["hbm_fraction"]) for r in rows], lambda v: v <= MAX_HBM_FRACTION)  # fmt: skip
  add("MoE GiB per device ÷ equal-total dense", f"<= {MAX_MOE_OVER_DENSE}",
      [(r["measured"] and r["dense_measured"], r["moe_over_dense"]) for r in rows if r["moe"]],
      lambda v: v <= MAX_MOE_OVER_DENSE)  # fmt: skip
  g8 = [r for r in rows if r["study"] == "krajewski2025_50b" and "g8" in r["run_id"] and r["params_total"] > 50e9]
  add("56B G=8: GiB per device ÷ HBM of its slice", "<= 1 (fits)",
      [(r["measured"], r["hbm_fraction"]) for r in g8], lambda v: v <= 1.0)  # fmt: skip
  return out


def to_markdown(report: dict[str, Any]) -> str:
  return bench.to_markdown("preflight", report)
