"""The local-multihost backend: each worker is P local processes joined through jax.distributed.

This is the path a TPU pod slice takes (process 0 claims a run and broadcasts it; all processes train
it as one SPMD program), run on one machine so that tests and laptops exercise it: on CPU each
process gets its own fake devices and the processes talk through gloo collectives.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from . import local
from .common import DEFAULT_WORKER, Command, WorkerOptions, local_argv, worker_args


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def commands(
  study: str,
  root: str,
  *,
  processes: int = 2,
  workers: int = 1,
  devices_per_process: int | None = None,
  options: WorkerOptions = DEFAULT_WORKER,
) -> list[Command]:
  """`workers` groups of `processes` processes; each group has its own coordinator port."""
  if processes < 2:
    raise ValueError(f"--processes: a multi-process worker needs at least 2, got {processes}")
  if workers < 1:
    raise ValueError(f"--workers: must be at least 1, got {workers}")
  env = ()
  if devices_per_process is not None:
    if devices_per_process < 1:
      raise ValueError(f"--devices-per-process: must be at least 1, got {devices_per_process}")
    env = (("XLA_FLAGS", f"--xla_force_host_platform_device_count={devices_per_process}"), ("JAX_PLATFORMS", "cpu"))
  out = []
  for _ in range(workers):
    port = free_port()
    for i in range(processes):
      extra = ["--coordinator", f"localhost:{port}", "--num-processes", str(processes), "--process-id", str(i)]
      out.append(Command(local_argv(worker_args(study, root, options, extra)), env))
  return out


def run(
  study: str,
  root: str,
  *,
  processes: int = 2,
  workers: int = 1,
  devices_per_process: int | None = None,
  options: WorkerOptions = DEFAULT_WORKER,
  dry_run: bool = False,
  display: bool = True,
  every: float = 1.0,
  echo: Callable[[str], None] = print,
) -> int:
  """Runs the study's queue with `workers` multi-process workers here; --dry-run prints their commands."""
  cmds = commands(study, root, processes=processes, workers=workers, devices_per_process=devices_per_process,
                  options=options)  # fmt: skip
  if dry_run:
    for command in cmds:
      echo(command.shell())
    return 0
  return local.launch(cmds, study, root, options, display=display, every=every, echo=echo)
