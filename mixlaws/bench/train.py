"""`mixlaws bench train`: host overhead of the training loop and start-up with a warm compilation cache.

Targets (issue 5):
- the loop's host work (batch assembly, dispatch, metric fetch and logging) costs < 5% of the step
  time for a ~1M-parameter model. Measured as a ratio in one process: the loop's step period (the
  median `step_time` that `train` records) against the bare step period of the same compiled step
  called back to back on a device-resident batch. Rounds alternate the two and the best of each is
  kept, so both are taken at the machine's least-loaded moments;
- with JAX's persistent compilation cache in the run root, a second run of identical shapes starts
  its first step within 3 s of its data being ready: two fresh processes train the same shapes in
  one root (the first fills the cache), and each reports `first_step_s` in its status.json.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from mixlaws import bench, config, rundir
from mixlaws.config import Config

OVERHEAD_TARGET = 0.05
WARM_START_TARGET_S = 3.0
# ~1M parameters: 5 blocks of width 128 (12·d² each ≈ 0.98M) plus a byte vocabulary; batch 8 × 128 tokens.
MODEL_OVERRIDES = (
  "model.d_model=128",
  "model.n_layers=5",
  "model.n_heads=4",
  "model.vocab_size=259",
  "model.seq_len=128",
  "train.batch_size=8",
  "train.tokens=0",
  "train.warmup_fraction=0",
  "train.eval_tokens=1024",
  "train.eval_every=0",
  "checkpoint.every_steps=0",
  "output.log_every=1",
  "data.max_documents=200",
  "mesh.data=1",
  "mesh.fsdp=1",
)


def bench_config(base_overrides: tuple[str, ...], data_dir: str, steps: int) -> Config:
  """The benchmark's model; `data_dir` is the default place for its data (an override may name another)."""
  overrides = (*MODEL_OVERRIDES, f"data.data_dir={data_dir}", *base_overrides, f"train.steps={steps}")
  return config.resolve(config.apply_overrides(config.base_config(), overrides), n_devices=1)


def train_on_one_device(cfg: Config, run_dir: str) -> None:
  import jax

  from mixlaws import train

  state = train.train(cfg, run_dir, progress=False, devices=jax.devices()[:1])
  if state != "done":
    raise RuntimeError(f"{run_dir}: the benchmark run ended {state}")


def loop_step_period(cfg: Config, run_dir: str) -> float:
  """Median step period of `train`'s loop (its recorded `step_time`), the first (compiling) step left out."""
  train_on_one_device(cfg, run_dir)
  records = rundir.RunDir(run_dir).read_metrics()
  times = [r["step_time"] for r in records if r["split"] == "train" and r["step"] > 1]
  return statistics.median(times)


def bare_step_period(cfg: Config, steps: int) -> float:
  """Median period of the same compiled train step dispatched back to back on one device-resident batch."""
  import jax
  import numpy as np
  from jax.sharding import NamedSharding, PartitionSpec

  from mixlaws import data, optim, sharding, train

  mesh = sharding.make_mesh(cfg.mesh, jax.devices()[:1])
  tx = optim.optimizer(cfg)
  state, shardings, _ = train.init_state(cfg, mesh, tx)
  # the loop's shardings exactly, so the program is the loop's own (and comes from the compilation cache)
  batch_sharding, replicated = train.batch_sharding(cfg, mesh), NamedSharding(mesh, PartitionSpec())
  step = jax.jit(train.make_train_step(cfg, train.graphdef(cfg), tx, mesh), donate_argnums=0,
                 in_shardings=(shardings, batch_sharding, replicated), out_shardings=(shardings, None))  # fmt: skip
  batch = jax.device_put(data.TrainIterator(cfg).next(cfg.train.batch_size), batch_sharding)
  lr = np.float32(1e-3)
  state, metrics = step(state, batch, lr)
  jax.block_until_ready(metrics)
  periods = []
  for _ in range(3):
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, batch, lr)
    jax.block_until_ready(metrics)
    periods.append((time.perf_counter() - start) / steps)
  return statistics.median(periods)


def host_overhead(base_overrides: tuple[str, ...], work_dir: str, steps: int, rounds: int,
                  log: Callable[[str], None]) -> dict:  # fmt: skip
  """Loop period vs bare period in alternating rounds; the best of each."""
  cfg = bench_config(base_overrides, os.path.join(work_dir, "data"), steps)
  loop_periods, bare_periods = [], []
  for r in range(rounds):
    loop_periods.append(loop_step_period(cfg, os.path.join(work_dir, "runs", "overhead", f"round-{r}")))
    bare_periods.append(bare_step_period(cfg, steps // 3))
    log(f"round {r + 1}/{rounds}: loop {1e3 * loop_periods[-1]:.2f} ms/step, bare {1e3 * bare_periods[-1]:.2f} ms/step")
  loop, bare = min(loop_periods), min(bare_periods)
  from mixlaws import counting

  overhead = max(loop - bare, 0.0) / loop
  return {
    "model": f"d_model {cfg.model.d_model}, {cfg.model.n_layers} layers, batch {cfg.train.batch_size}×{cfg.model.seq_len}",
    "params": int(counting.run_counts(cfg).params.total),
    "loop_ms_per_step": 1e3 * loop,
    "bare_ms_per_step": 1e3 * bare,
    "host_overhead": overhead,
    "target": f"< {OVERHEAD_TARGET:.0%}",
    "meets_target": overhead < OVERHEAD_TARGET,
  }


def warm_start(base_overrides: tuple[str, ...], work_dir: str, log: Callable[[str], None]) -> dict:
  """Two fresh processes train identical shapes in one root: the first with a cold cache, then a warm one."""
  cfg = bench_config(base_overrides, os.path.join(work_dir, "data"), steps=3)
  root = os.path.join(work_dir, "runs")
  shutil.rmtree(os.path.join(root, ".jax_cache"), ignore_errors=True)
  result = {}
  for name in ("cold", "warm"):
    run = rundir.RunDir(os.path.join(root, "startup", name))
    run.write_config({"study": "startup", "run_id": name, "config": cfg.to_dict()})
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": os.path.join(root, ".jax_cache")}  # this root's, not another
    subprocess.run([sys.executable, "-m", "mixlaws.bench.train", os.fspath(run.path)], check=True,
                   stdout=subprocess.DEVNULL, env=env)  # fmt: skip
    timings = run.read_status()["timings"]
    result[f"{name}_startup_s"] = timings["startup_s"]
    result[f"{name}_first_step_s"] = timings["first_step_s"]
    log(
      f"{name} cache: data ready after {timings['startup_s']:.2f} s, first step {timings['first_step_s']:.2f} s later"
    )
  result["target"] = f"warm first step < {WARM_START_TARGET_S:g} s"
  result["meets_target"] = result["warm_first_step_s"] < WARM_START_TARGET_S
  return result


def run(base_overrides: tuple[str, ...] = (), *, steps: int = 150, rounds: int = 3, work_dir: str | None = None,
        log: Callable[[str], None] = print) -> dict:  # fmt: skip
  """The report: machine, host overhead and warm start-up."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache

  tmp = tempfile.mkdtemp(prefix="mixlaws-bench-train-", dir=work_dir)
  cache_dir = jax.config.jax_compilation_cache_dir
  try:
    startup = warm_start(base_overrides, tmp, log)  # first: it fills the run root's compilation cache
    return {
      "machine": bench.machine(),
      "host_overhead": host_overhead(base_overrides, tmp, steps, rounds, log),
      "startup": startup,
    }
  finally:
    # `train` pointed this process's compilation cache into `tmp`: point it back before `tmp` goes
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    compilation_cache.reset_cache()
    shutil.rmtree(tmp, ignore_errors=True)


def headline(report: dict) -> list[dict]:
  """Host overhead and warm start-up, for `mixlaws bench all`."""
  overhead, startup = report["host_overhead"], report["startup"]
  return [
    bench.figure("training loop: host time per step ÷ step time (~1M params)", overhead["host_overhead"],
                 overhead["target"], overhead["meets_target"]),
    bench.figure("first step after data ready, warm cache ÷ cold cache", startup["warm_first_step_s"] /
                 startup["cold_first_step_s"], f"{startup['target']} ({startup['warm_first_step_s']:.2f} s)",
                 startup["meets_target"]),
  ]  # fmt: skip


if __name__ == "__main__":  # the fresh process of `warm_start`: train the run dir given on the command line
  train_on_one_device(config.resolve(config.load_file(sys.argv[1]), n_devices=1), sys.argv[1])
