"""The local backend: K worker processes on this machine, with a live view of the whole sweep."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mixlaws import sweep

from . import progress, supervise
from .common import DEFAULT_WORKER, Command, WorkerOptions, local_argv, worker_args


def commands(study: str, root: str, workers: int = 1, options: WorkerOptions = DEFAULT_WORKER) -> list[Command]:
  if workers < 1:
    raise ValueError(f"--workers: must be at least 1, got {workers}")
  return [Command(local_argv(worker_args(study, root, options))) for _ in range(workers)]


def launch(
  commands: Sequence[Command],
  study: str,
  root: str,
  options: WorkerOptions = DEFAULT_WORKER,
  *,
  display: bool = True,
  every: float = 1.0,
  echo: Callable[[str], None] = print,
) -> int:
  """Starts the workers, shows the sweep until they exit, and returns the launch's exit status.

  0: nothing left to do here; 1: a run failed or a worker crashed; 75: stopped (rerun to resume).
  """
  log_dir = sweep.study_dir(root, study) / ".logs"
  procs = supervise.start(commands, log_dir)
  view = progress.SweepView(root, study, options.stale_after) if display else None
  try:
    codes = supervise.wait(procs, every=every, on_tick=view.update if view else None, echo=echo)
  finally:
    if view is not None:
      view.close()
  echo(progress.report(root, study, options.stale_after))
  crashed = [i for i, code in enumerate(codes) if code not in (0, supervise.EXIT_STOPPED)]
  for i in crashed:
    echo(f"worker {i} exited with status {codes[i]}; the end of {log_dir / f'worker-{i}.log'}:")
    echo(supervise.log_tail(log_dir, i))
  if supervise.EXIT_STOPPED in codes:
    echo("stopped: rerun the same command to resume")
    return supervise.EXIT_STOPPED
  rows = sweep.scan(root, study, stale_after=options.stale_after)
  if crashed or any(r.state == "failed" for r in rows):
    if any(r.state == "failed" for r in rows):
      echo(f"failed runs: `mixlaws status {study}` shows why; rerun with --retry-failed to try them again")
    return 1
  return 0


def run(
  study: str,
  root: str,
  *,
  workers: int = 1,
  options: WorkerOptions = DEFAULT_WORKER,
  dry_run: bool = False,
  display: bool = True,
  every: float = 1.0,
  echo: Callable[[str], None] = print,
) -> int:
  """Runs the study's queue with `workers` processes here; --dry-run prints their commands."""
  cmds = commands(study, root, workers, options)
  if dry_run:
    for command in cmds:
      echo(command.shell())
    return 0
  return launch(cmds, study, root, options, display=display, every=every, echo=echo)
