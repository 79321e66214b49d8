"""A live view of a whole sweep on the terminal (rich): runs done of total, and each running run's step and loss."""

from __future__ import annotations

import json
import os

import rich.console
import rich.live
import rich.progress
import rich.table

from mixlaws import sweep
from mixlaws.rundir import RunDir


def latest_loss(run: RunDir) -> float | None:
  """The newest train loss written so far (the trainer writes metric chunks at each checkpoint)."""
  chunks = run.metric_chunks()
  for chunk in reversed(chunks):
    for line in reversed(chunk.read_text().splitlines()):
      record = json.loads(line)
      if record.get("split") == "train" and "loss" in record:
        return record["loss"]
  return None


def summary_line(rows: list[sweep.RunState]) -> str:
  found = sweep.counts(rows)
  return f"{len(rows)} runs: " + ", ".join(f"{n} {state}" for state, n in found.items() if n)


class SweepView:
  """Redraws on `update()`; `close()` leaves the last view and a summary line on the terminal.

  Each run that ends while the view is up gets a line of its own above it (the only progress a piped
  output shows, since a live view draws on a terminal only).
  """

  def __init__(self, root: str, study: str, stale_after: float = sweep.STALE_AFTER):
    self.root, self.study, self.stale_after = root, study, stale_after
    self.console = rich.console.Console()
    self.bar = rich.progress.Progress(
      rich.progress.TextColumn(f"[bold]{study}"),
      rich.progress.BarColumn(),
      rich.progress.TextColumn("{task.completed}/{task.total} runs done"),
      rich.progress.TimeElapsedColumn(),
    )
    self.task = self.bar.add_task(study, total=None)
    self.live = rich.live.Live(self._render([]), console=self.console, refresh_per_second=2)
    self.live.start()
    self.rows: list[sweep.RunState] = []
    self.ended: set[str] | None = None  # runs already ended when the view first looked

  def _render(self, rows: list[sweep.RunState]) -> rich.console.Group:
    if not any(r.state == "running" for r in rows):
      return rich.console.Group(self.bar)
    table = rich.table.Table(title=summary_line(rows), title_justify="left")
    for name in ("running", "attempt", "step", "loss", "heartbeat"):
      table.add_column(name, justify="left" if name == "running" else "right")
    for r in rows:
      if r.state == "running":
        loss = latest_loss(RunDir(sweep.study_dir(self.root, self.study) / r.run_id))
        table.add_row(r.run_id, str(r.attempt), f"{r.step}/{r.total_steps}", "-" if loss is None else f"{loss:.4f}",
                      f"{r.heartbeat_age:.0f}s ago")  # fmt: skip
    return rich.console.Group(self.bar, table)

  def update(self) -> None:
    self.rows = sweep.scan(self.root, self.study, stale_after=self.stale_after)
    done = sum(r.state == "done" for r in self.rows)
    ended = {r.run_id for r in self.rows if r.state in ("done", "failed")}
    if self.ended is not None:
      for r in self.rows:
        if r.run_id in ended - self.ended:
          self.live.console.print(self._ended_line(r, done))
    self.ended = ended
    self.bar.update(self.task, total=len(self.rows), completed=done)
    self.live.update(self._render(self.rows))

  def _ended_line(self, r: sweep.RunState, done: int) -> str:
    if r.state == "failed":
      return f"{r.run_id}: failed at step {r.step}"
    loss = latest_loss(RunDir(sweep.study_dir(self.root, self.study) / r.run_id))
    final = "" if loss is None else f", final train loss {loss:.4f}"
    return f"[{done}/{len(self.rows)} done] {r.run_id}: {r.step} steps{final}"

  def close(self) -> None:
    self.update()
    self.live.stop()
    if not self.console.is_terminal:
      self.console.line()  # rich leaves a piped final render without its newline


def report(root: str, study: str, stale_after: float = sweep.STALE_AFTER) -> str:
  """One line on where the sweep stands, for the end of a launch."""
  return f"{os.fspath(sweep.study_dir(root, study))}: {summary_line(sweep.scan(root, study, stale_after=stale_after))}"
