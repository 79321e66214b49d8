"""`mixlaws bench collect`: ingest speed of a synthetic study, against reading and parsing its files.

Targets (issue 8): 300 runs x 2,000 logged steps x 6 scalars (3.6M values) ingested in < 30 s; a
second collect with nothing new in < 2 s. The in-process reference is the time to read every
chunk and json.loads each line, the least any collector has to do. Each case reports wall and
CPU seconds and both as ratios to the reference.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

from mixlaws import bench, collect, config, counting, rundir, store

STUDY = "bench"
SCALARS = ("loss", "lr", "grad_norm", "aux_loss", "step_time", "mfu")
FIRST_TARGET_S = 30.0
NOTHING_NEW_TARGET_S = 2.0


def write_study(root: str, runs: int, steps: int, chunk_steps: int, scalars: int = len(SCALARS)) -> int:
  """Writes a finished synthetic study of `runs` run dirs under root/bench; returns the values written."""
  names = (SCALARS + tuple(f"extra_{i}" for i in range(scalars)))[:scalars]
  values = 0
  for i in range(runs):
    overrides = [f"model.d_model={128 * (1 + i % 4)}", f"moe.expansion_rate={(1, 8, 32)[i % 3]}", "train.steps=2000"]
    overrides += ["train.tokens=0", "model.n_layers=4"]
    cfg = config.resolve(config.apply_overrides(config.base_config(), overrides))
    counts = counting.run_counts(cfg)
    run_id = f"{STUDY}-{i:04d}"
    run = rundir.RunDir(os.path.join(root, STUDY, run_id))
    run.write_config({"study": STUDY, "run_id": run_id, "config": cfg.to_dict(), "counts": counts.to_dict()})
    per_step = cfg.train.batch_size * cfg.model.seq_len
    for first in range(1, steps + 1, chunk_steps):
      records = []
      for step in range(first, min(first + chunk_steps, steps + 1)):
        record = {"step": step, "tokens": step * per_step, "flops": step * per_step * 6.0e8, "split": "train"}
        record.update({name: (3.0 + 5.0 / math.sqrt(step) + 1e-3 * k) for k, name in enumerate(names)})
        records.append(record)
        values += len(names)
      run.write_metrics(records, attempt=0)
    run.write_status("done", step=steps)
  return values


def read_and_parse(root: str) -> int:
  """The reference: read every chunk of the study and json.loads each line; returns the records."""
  records = 0
  study_dir = os.path.join(root, STUDY)
  for run_id in os.listdir(study_dir):
    metrics_dir = os.path.join(study_dir, run_id, "metrics")
    for name in os.listdir(metrics_dir):
      with open(os.path.join(metrics_dir, name), "rb") as f:
        records += len([json.loads(line) for line in f.read().splitlines() if line.strip()])
  return records


def run(runs: int = 300, steps: int = 2000, chunk_steps: int = 200, repeats: int = 2, work_dir: str | None = None):
  """Builds the study in a temporary dir, times the reference and both collects, returns the report."""
  tmp = tempfile.mkdtemp(prefix="mixlaws-bench-collect-", dir=work_dir)
  try:
    root = os.path.join(tmp, "runs")
    start = time.perf_counter()
    values = write_study(root, runs, steps, chunk_steps)
    write_s = time.perf_counter() - start
    db = store.default_path(root)

    def first_collect() -> None:
      for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
          os.remove(db + suffix)
      report = collect.collect(root, STUDY)
      if report.values != values:
        raise RuntimeError(f"bench collect: ingested {report.values} values, expected {values}")

    reference = _timed(lambda: read_and_parse(root), repeats)
    rows = [
      _row("read + json.loads per line (reference)", reference, reference, None),
      _row("first collect", _timed(first_collect, repeats), reference, FIRST_TARGET_S),
      _row(
        "collect with nothing new", _timed(lambda: collect.collect(root, STUDY), 3), reference, NOTHING_NEW_TARGET_S
      ),
      _row("`mixlaws collect` process, nothing new", (_cli_seconds(root), math.nan), reference, NOTHING_NEW_TARGET_S),
    ]
    return {
      "machine": bench.machine(),
      "workload": {
        "runs": runs,
        "logged_steps": steps,
        "scalars": len(SCALARS),
        "values": values,
        "chunk_steps": chunk_steps,
        "chunk_files": runs * math.ceil(steps / chunk_steps),
        "store_mib": round(os.path.getsize(db) / 2**20, 1),
        "write_study_s": round(write_s, 2),
      },
      "results": rows,
    }
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def _cli_seconds(root: str) -> float:
  """Wall time of a whole `mixlaws collect` process (interpreter start and imports included)."""
  start = time.perf_counter()
  subprocess.run([sys.executable, "-m", "mixlaws", "collect", STUDY, "--root", root], check=True, capture_output=True)
  return time.perf_counter() - start


def _timed(fn, repeats: int) -> tuple[float, float]:
  """(wall, CPU) seconds of the fastest of `repeats` calls.

  CPU time is reported beside wall time because on a shared machine the wall time of a
  single-threaded job stretches with the other load while its CPU time does not.
  """
  best = (math.inf, math.inf)
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
  return best


def _row(case: str, timing: tuple[float, float], reference: tuple[float, float], target_s: float | None):
  (wall, cpu), (reference_wall, reference_cpu) = timing, reference
  return {
    "case": case,
    "seconds": round(wall, 3),
    "cpu_seconds": round(cpu, 3),
    "x_reference": round(wall / reference_wall, 3),
    "cpu_x_reference": round(cpu / reference_cpu, 3),
    "target_s": target_s,
    "meets_target": None if target_s is None else wall < target_s,
  }


def headline(report: dict) -> list[dict]:
  """First and no-op collects against reading and parsing every chunk, for `mixlaws bench all`."""
  rows = {row["case"]: row for row in report["results"]}
  first, nothing = rows["first collect"], rows["collect with nothing new"]
  values = report["workload"]["values"]
  return [
    bench.figure(f"first collect ({values:,} values) ÷ read+parse of every chunk", first["x_reference"],
                 f"< {FIRST_TARGET_S:g} s ({first['seconds']:.1f} s)", first["meets_target"]),
    bench.figure("collect with nothing new ÷ read+parse of every chunk", nothing["x_reference"],
                 f"< {NOTHING_NEW_TARGET_S:g} s ({nothing['seconds']:.2f} s)", nothing["meets_target"]),
  ]  # fmt: skip
