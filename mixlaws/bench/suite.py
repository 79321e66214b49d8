"""`mixlaws bench all`: every benchmark in one process, one report with each headline ratio and its target."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from mixlaws import bench, config

BENCHMARKS = ("model", "data", "train", "collect", "fit")


def _modules() -> dict[str, Any]:
  from mixlaws.bench import collect, data, fit, model, train

  return {"model": model, "data": data, "train": train, "collect": collect, "fit": fit}


def run_one(name: str, log: Callable[[str], None]) -> dict[str, Any]:
  """One benchmark at the defaults its own command uses, but for two cuts that keep the suite in
  minutes: the model benchmark times only the cases its targets name (dense, and MoE over G with the
  CPU dispatch; `mixlaws bench model` adds every router × dispatch), and the fit benchmark times the
  scipy loop on every 10th start and scales it up (as `mixlaws bench fit --scipy-starts 450`)."""
  module = _modules()[name]
  if name == "model":
    base = config.apply_overrides(config.base_config(), module.MODEL_OVERRIDES)
    return module.run(base, only=f"token_choice/{module.CPU_DISPATCH}", log=log)
  if name == "fit":
    return module.run(scipy_starts=450)
  if name == "data":
    return module.run(config.resolve(config.apply_overrides(config.base_config(), module.MODEL_OVERRIDES)))
  if name == "train":
    return module.run(log=log)
  return module.run()


def headline(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
  """The benchmark's headline rows, each tagged with its name."""
  return [{"benchmark": name, **row} for row in _modules()[name].headline(report)]


def run(names: Sequence[str] = BENCHMARKS, log: Callable[[str], None] = print) -> dict[str, Any]:
  """{"machine", "figures": headline rows, "seconds": per benchmark, <name>: its own report without the machine}."""
  for name in names:
    if name not in BENCHMARKS:
      raise ValueError(f"bench all --only: unknown benchmark {name!r}; expected some of {', '.join(BENCHMARKS)}")
  report: dict[str, Any] = {"machine": bench.machine(), "figures": [], "seconds": {}}
  for name in names:
    log(f"── bench {name}")
    start = time.perf_counter()
    result = run_one(name, log)
    report["seconds"][name] = round(time.perf_counter() - start, 1)
    result.pop("machine", None)
    report["figures"] += headline(name, result)
    report[name] = result
  return report


def to_markdown(report: dict[str, Any]) -> str:
  """The machine and the headline table, then each benchmark's own report one heading level down."""
  head = {key: report[key] for key in ("machine", "figures", "seconds")}
  parts = [bench.to_markdown("all", head)]
  for name in report["seconds"]:
    text = bench.to_markdown(name, report[name])
    parts.append("\n".join("#" + line if line.startswith("#") else line for line in text.splitlines()))
  return "\n".join(parts) + "\n"


def readme_table(report: dict[str, Any]) -> str:
  """The headline figures as the README shows them, with the machine they were measured on."""
  m = report["machine"]
  lines = [f"Measured on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, JAX {m['jax']} on {m['backend']}, "
           f"malloc: {m['malloc']}.", "",
           "| benchmark | figure | ratio | target | met |", "|---|---|---|---|---|"]  # fmt: skip
  for row in report["figures"]:
    met = "yes" if row["met"] else "**no**"
    lines.append(f"| {row['benchmark']} | {row['figure']} | {row['ratio']:.3g} | {row['target']} | {met} |")
  return "\n".join(lines) + "\n"
