"""Multi-process runs: one SPMD program over the devices of several processes (hosts).

On TPU pods `jax.distributed.initialize()` discovers everything itself. Elsewhere the config names a
coordinator (process 0's host:port), the process count and this process's id; on CPU the processes
talk through gloo collectives. Tests run several local processes this way.
"""

from __future__ import annotations

import os

import jax

from mixlaws.config import DistributedConfig


def on_tpu_pod() -> bool:
  """True on a multi-host TPU VM, where jax.distributed discovers the coordinator itself."""
  return bool(os.environ.get("TPU_WORKER_HOSTNAMES")) and "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")


def initialize(cfg: DistributedConfig) -> None:
  """Joins the run's processes; a no-op for a single process or when already initialised."""
  if jax.distributed.is_initialized():
    return
  if cfg.num_processes > 1:
    # Only affects the CPU client; must be set before any backend starts (so no backend query here).
    jax.config.update("jax_cpu_collectives_implementation", cfg.cpu_collectives)
    jax.distributed.initialize(
      coordinator_address=cfg.coordinator_address,
      num_processes=cfg.num_processes,
      process_id=cfg.process_id,
    )
  elif on_tpu_pod():
    jax.distributed.initialize()
