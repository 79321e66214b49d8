"""Local worker processes: start them, wait for them, and stop them cleanly on Ctrl-C.

Workers run in their own sessions, so a terminal's Ctrl-C reaches only the launcher, which passes it
on as one SIGINT per worker: each checkpoints its run, marks it preempted and exits (status 75). A
second Ctrl-C kills them; their runs resume from the last checkpoint on the next launch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence

from etils import epath

from .common import Command

EXIT_STOPPED = 75  # `mixlaws worker` after a stop signal: rerun the same command to resume


def start(commands: Sequence[Command], log_dir: epath.Path | None = None) -> list[subprocess.Popen]:
  """Starts each command; with `log_dir`, its output is appended to log_dir/worker-<i>.log."""
  if log_dir is not None:
    log_dir.mkdir(parents=True, exist_ok=True)
  procs = []
  for i, command in enumerate(commands):
    out = open(os.fspath(log_dir / f"worker-{i}.log"), "a") if log_dir is not None else None  # noqa: SIM115
    try:
      procs.append(subprocess.Popen(list(command.argv), env=command.environ(), stdout=out,
                                    stderr=subprocess.STDOUT if out else None, start_new_session=True))  # fmt: skip
    finally:
      if out is not None:
        out.close()  # the child holds its own descriptor
  return procs


@contextlib.contextmanager
def _sigterm_as_interrupt():
  """SIGTERM (a preempted host, `kill`) stops the workers like Ctrl-C does."""

  def interrupt(signum, frame):
    raise KeyboardInterrupt

  try:
    previous = signal.signal(signal.SIGTERM, interrupt)
  except ValueError:  # not the main thread: leave SIGTERM alone
    yield
    return
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def wait(
  procs: Sequence[subprocess.Popen],
  *,
  every: float = 1.0,
  on_tick: Callable[[], None] | None = None,
  echo: Callable[[str], None] = print,
) -> list[int]:
  """Waits for every process, calling `on_tick` every `every` seconds; returns their exit codes."""
  interrupts = 0
  with _sigterm_as_interrupt():
    while True:
      try:
        for proc in procs:
          while proc.poll() is None:
            if on_tick is not None:
              on_tick()
            with contextlib.suppress(subprocess.TimeoutExpired):
              proc.wait(timeout=every)
        break
      except KeyboardInterrupt:
        interrupts += 1
        sig = signal.SIGINT if interrupts == 1 else signal.SIGKILL
        echo("stopping: each worker checkpoints its run (Ctrl-C again to kill them)" if interrupts == 1
             else "killing the workers; their runs resume from their last checkpoints")  # fmt: skip
        for proc in procs:
          if proc.poll() is None:
            proc.send_signal(sig)
  if on_tick is not None:
    on_tick()
  return [proc.returncode for proc in procs]


def log_tail(log_dir: epath.Path, index: int, lines: int = 5) -> str:
  path = log_dir / f"worker-{index}.log"
  if not path.exists():
    return ""
  return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
