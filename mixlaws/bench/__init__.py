"""Benchmarks: each reports ratios against a reference measured in the same process.

The machine is shared and absolute times drift, so every figure that a target is stated in is a
ratio (achieved FLOP/s over a matmul peak measured a moment before, pipeline tokens/s over
training tokens/s, vectorised fit time over a scipy loop) taken inside one process.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from mixlaws import allocator


def best_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
  """Fastest wall time of `fn()` over `repeats` runs (the least disturbed by other load)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def matmul_peak_flops(n: int = 1024, dtype: str = "float32", repeats: int = 10) -> float:
  """Achieved FLOP/s of an n×n×n matmul on the default device: the in-process peak reference."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  rng = np.random.default_rng(0)  # host-made inputs: the matmul is the only compilation
  a, b = (jnp.asarray(rng.standard_normal((n, n)), dtype=jnp.dtype(dtype)) for _ in range(2))
  f = jax.jit(lambda x, y: x @ y)
  seconds = best_time(lambda: f(a, b).block_until_ready(), repeats=repeats, warmup=2)
  return 2 * n**3 / seconds


def machine() -> dict[str, Any]:
  """What the figures were measured on."""
  import jax

  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
  except OSError:
    pass
  memory_gib = None
  try:
    memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
  except (ValueError, OSError, AttributeError):
    pass
  device = jax.devices()[0]
  return {
    "cpu": cpu,
    "cores": os.cpu_count(),
    "memory_gib": memory_gib,
    "python": platform.python_version(),
    "jax": jax.__version__,
    "backend": jax.default_backend(),
    "device": getattr(device, "device_kind", str(device)),
    "n_devices": jax.device_count(),
    "malloc": allocator.describe(),
  }


def figure(name: str, ratio: float, target: str, met: bool) -> dict[str, Any]:
  """One headline row of `mixlaws bench all`: a ratio against an in-process reference and its target."""
  return {"figure": name, "ratio": float(ratio), "target": target, "met": bool(met)}


def write_report(name: str, report: dict[str, Any], out_dir: str, markdown: str | None = None) -> tuple[str, str]:
  """Writes <out_dir>/<name>.json and <name>.md (`markdown`, or the report through `to_markdown`)."""
  os.makedirs(out_dir, exist_ok=True)
  json_path = os.path.join(out_dir, f"{name}.json")
  md_path = os.path.join(out_dir, f"{name}.md")
  with open(json_path, "w") as f:
    json.dump(report, f, indent=2, default=float)
  with open(md_path, "w") as f:
    f.write(to_markdown(name, report) if markdown is None else markdown)
  return json_path, md_path


def to_markdown(name: str, report: dict[str, Any]) -> str:
  """A report as Markdown: the machine, then each list of result rows as a pipe table."""
  lines = [f"# mixlaws bench {name}", ""]
  for key, value in report.items():
    if isinstance(value, list) and value and isinstance(value[0], dict):
      columns = list(value[0])
      lines += [f"## {key}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
      lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in value]
      lines.append("")
    elif isinstance(value, dict):
      lines += [f"## {key}", ""] + [f"- {k}: {_cell(v)}" for k, v in value.items()] + [""]
    else:
      lines += [f"- {key}: {_cell(value)}", ""]
  return "\n".join(lines)


def _cell(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)
