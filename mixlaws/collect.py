"""Run dirs → results store: configs, status and metric chunks, idempotently and fast.

`collect` walks `<root>/<study>/*`, reads each run's config.json and status.json, and ingests the
metric chunks it has not ingested before (chunks are immutable, so a name and a size identify
one). Each run is written in one transaction, so a failed or interrupted collect leaves every run
either as it was or fully updated. For each (split, name, step) the newest attempt's value wins
whatever order the chunks arrive in; within an attempt, the later chunk and the later line win. A
line that does not parse is skipped with a warning naming the file and line; the rest is kept.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from etils import epath

from mixlaws import rundir, store

KEY_FIELDS = frozenset(("step", "tokens", "flops", "split"))  # every other field of a record is a metric
_MAX_LISTED = 3  # corrupt lines named one by one in a chunk's warning


@dataclasses.dataclass
class CollectReport:
  """What one collect did."""

  study: str
  store: str
  runs: int = 0  # run dirs found
  runs_written: int = 0  # runs whose row or metrics changed
  chunks: int = 0  # chunks ingested now
  values: int = 0  # metric values written now
  skipped_lines: int = 0  # records lost in the chunks ingested now
  earlier_warnings: list[str] = dataclasses.field(default_factory=list)  # corrupt chunks of earlier collects
  earlier_skipped: int = 0  # records lost in those
  unreadable: int = 0  # run dirs whose config.json or status.json does not parse: skipped, named in warnings
  warnings: list[str] = dataclasses.field(default_factory=list)
  seconds: float = 0.0

  def summary(self) -> str:
    return (
      f"{self.study}: {self.runs} runs ({self.runs_written} updated), {self.chunks} new chunks, "
      f"{self.values:,} values, {self.skipped_lines} lines skipped"
      + (f" ({self.earlier_skipped} more in earlier collects)" if self.earlier_skipped else "")
      + (f", {self.unreadable} unreadable runs skipped" if self.unreadable else "")
      + f" in {self.seconds:.2f} s → {self.store}"
    )


@dataclasses.dataclass
class _Scan:
  """One run dir as read from disk: its records and the bytes of its new chunks."""

  path: epath.Path
  record: dict[str, Any]
  status: dict[str, Any] | None
  chunks: list[tuple[str, bytes]]  # (name, data) of chunks not ingested before
  error: str = ""  # why config.json or status.json could not be read; the run is then skipped


def collect(
  root: str | os.PathLike, study: str, store_path: str | os.PathLike | None = None, *, threads: int = 8
) -> CollectReport:
  """Ingests every run dir of `study` under `root` into the store (default `<root>/results.sqlite`)."""
  start = time.perf_counter()
  path = os.fspath(store_path) if store_path is not None else store.default_path(root)
  run_dirs = _run_dirs(root, study)
  report = CollectReport(study=study, store=path, runs=len(run_dirs))
  with store.Store(path) as st:
    stored = st.stored_runs(study)
    seen = st.ingested_chunks(study)
    # Threads read files (the slow part on gs://) ahead of the main thread, which parses and writes.
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
      scans = _read_ahead(pool, lambda d: _scan(d, seen.get(d.name, {})), run_dirs, ahead=4 * threads)
      for scan in scans:
        _ingest(st, study, scan, stored.get(scan.path.name), report)
    new = set(report.warnings)
    for _, _, lost, warning in st.skipped(study):  # kept in the store, so a stopped collect loses none
      if warning not in new:
        report.earlier_warnings.append(warning)
        report.earlier_skipped += lost
  report.seconds = time.perf_counter() - start
  return report


def stored_warnings(root: str | os.PathLike, study: str) -> list[str]:
  """The corrupt-chunk warnings the default store at `root` keeps for the study ([] without one)."""
  if "://" in os.fspath(root) or not os.path.exists(store.default_path(root)):
    return []
  with store.Store(store.default_path(root), create=False) as st:
    return [warning for _, _, _, warning in st.skipped(study)]


def watch(
  root: str | os.PathLike,
  study: str,
  every: float,
  store_path: str | os.PathLike | None = None,
  *,
  polls: int | None = None,
  on_report: Callable[[CollectReport], None] = lambda report: None,
  sleep: Callable[[float], None] = time.sleep,
) -> None:
  """Collects every `every` seconds, `polls` times (None → until interrupted)."""
  if not every > 0:
    raise ValueError(f"watch: the polling interval must be a positive number of seconds, got {every}")
  done = 0
  while True:
    on_report(collect(root, study, store_path))
    done += 1
    if polls is not None and done >= polls:
      return
    sleep(every)


def _run_dirs(root: str | os.PathLike, study: str) -> list[epath.Path]:
  root_path = epath.Path(root)
  try:
    exists = root_path.is_dir()
  except ImportError as e:  # gs:// without its filesystem package
    raise ValueError(f"{os.fspath(root)}: {e}") from None
  if not exists:
    raise ValueError(f"{os.fspath(root)}: run root does not exist")
  study_dir = root_path / study
  if not study_dir.is_dir():
    raise ValueError(f"{os.fspath(study_dir)}: no such study directory under the run root")
  return sorted((p for p in study_dir.iterdir() if not p.name.startswith(".") and p.is_dir()), key=lambda p: p.name)


def _scan(path: epath.Path, ingested: dict[str, int]) -> _Scan:
  run = rundir.RunDir(path)
  try:
    record = run.read_config()
    # Status before the chunk listing: a trainer writes its last chunk before "done", so a run read
    # as done has every chunk in the listing that follows.
    status = run.read_status()
  except rundir.UnreadableFile as e:  # one corrupt run dir must not stop the study's collect
    return _Scan(path, {}, None, [], error=str(e))
  chunks = []
  if run.metrics_dir.exists():
    for chunk in run.metrics_dir.iterdir():
      if rundir.parse_chunk_name(chunk.name) and ingested.get(chunk.name) != chunk.stat().length:
        chunks.append((chunk.name, chunk.read_bytes()))
  return _Scan(path, record, status, chunks)


def _read_ahead(pool: concurrent.futures.Executor, fn: Callable, items: Iterable, ahead: int) -> Iterator:
  """fn over items in order, at most `ahead` items in flight (bounds the bytes held in memory)."""
  pending: collections.deque = collections.deque()
  for item in items:
    pending.append(pool.submit(fn, item))
    if len(pending) >= ahead:
      yield pending.popleft().result()
  while pending:
    yield pending.popleft().result()


def _ingest(st: store.Store, study: str, scan: _Scan, stored_row: tuple | None, report: CollectReport) -> None:
  if scan.error:
    report.unreadable += 1
    report.warnings.append(f"{scan.error}; run skipped")
    return
  config_path = os.fspath(scan.path / "config.json")
  row = store.run_row(scan.record, scan.status, source=config_path)
  run_id = row["run_id"]
  if row["study"] != study or run_id != scan.path.name:
    raise ValueError(
      f"{config_path}: names study {row['study']!r}, run {run_id!r} but lies in {study}/{scan.path.name}"
    )
  metrics: list[tuple] = []
  chunk_rows = []
  # The store keeps the newest attempt's value for a key whatever the order of writes; within one
  # attempt the later write wins, so chunks go in step order, as the run wrote them.
  warnings = []
  for name, data in sorted(scan.chunks, key=lambda c: _chunk_order(c[0])):
    first, last, attempt = rundir.parse_chunk_name(name)
    rows, records, bad = parse_chunk(data, run_id, attempt)
    metrics += rows
    lost = len(bad)
    if bad and bad[-1][1] == "truncated last line":
      # The writer died mid-chunk: every record after the last whole one is gone, not just one line.
      seen = max((r[3] for r in rows), default=first - 1)
      gone = _logged_steps(seen, last, scan.record)
      lost += gone - 1
      bad[-1] = (bad[-1][0], f"truncated last line: about {gone} record(s) of steps {seen + 1}–{last} lost")
    if bad:
      report.skipped_lines += lost
      warnings.append((name, lost, _corrupt_warning(os.fspath(scan.path / "metrics" / name), bad, lost)))
    chunk_rows.append((name, len(data), attempt, records, lost))
  report.warnings += [w for _, _, w in warnings]
  if not chunk_rows and stored_row == tuple(row[c] for c in store.RUN_COLUMNS):
    return
  st.write_run(row, metrics, chunk_rows, warnings)
  report.runs_written += 1
  report.chunks += len(chunk_rows)
  report.values += len(metrics)


def _chunk_order(name: str) -> tuple[int, int, str]:
  first, _, attempt = rundir.parse_chunk_name(name)
  return first, attempt, name


def parse_chunk(data: bytes, run_id: str, attempt: int) -> tuple[list[tuple], int, list[tuple[int, str]]]:
  """Metric rows of a chunk for `Store.write_run`, the number of valid records, and the skipped lines.

  Rows are (run_id, split, name, step, value, tokens, flops, attempt) in file order; skipped lines
  are (line number, reason).
  """
  numbered = [(i, line) for i, line in enumerate(data.split(b"\n"), start=1) if line.strip()]
  parsed: list = []
  try:
    # One json.loads for the whole chunk is several times faster than one per line; a line that
    # is not exactly one JSON value changes the element count and sends us to the per-line path.
    parsed = json.loads(b"[" + b",".join(line for _, line in numbered) + b"]")
  except ValueError:
    pass
  if len(parsed) != len(numbered):
    parsed = [_loads(line) for _, line in numbered]
  truncated = bool(data) and not data.endswith(b"\n")  # chunks are written whole, newline-terminated
  rows: list[tuple] = []
  records, bad = 0, []
  for (lineno, _), record in zip(numbered, parsed):
    values, reason = _values(record, run_id, attempt)
    if reason is None:
      rows += values
      records += 1
    elif truncated and lineno == numbered[-1][0] and isinstance(record, ValueError):
      bad.append((lineno, "truncated last line"))
    else:
      bad.append((lineno, reason))
  return rows, records, bad


def _loads(line: bytes) -> Any:
  try:
    return json.loads(line)
  except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
    return e


_NUMBER = (int, float, bool, type(None))


def _values(record: Any, run_id: str, attempt: int) -> tuple[list[tuple], str | None]:
  """The metric rows of one parsed line, or the reason it is not a metric record."""
  if type(record) is not dict:
    if isinstance(record, ValueError):
      return [], f"not valid JSON ({getattr(record, 'msg', None) or record})"
    return [], f"not a JSON object but {type(record).__name__}"
  step, split = record.get("step"), record.get("split", "train")
  tokens, flops = record.get("tokens"), record.get("flops")
  if type(step) is not int or step < 0:
    return [], f"step is {step!r}, not a non-negative integer"
  if type(split) is not str or not split:
    return [], f"split is {split!r}, not a name"
  rows = []
  for name, value in record.items():
    if type(value) not in _NUMBER:
      if name != "split":
        return [], f"{name} is {type(value).__name__}, not a number"
    elif name not in KEY_FIELDS:
      rows.append((run_id, split, name, step, value, tokens, flops, attempt))
  return rows, None


def _logged_steps(after: int, last: int, record: dict[str, Any]) -> int:
  """How many records a run logs for steps after+1..last (train.py's loop): a train record every
  output.log_every steps and at the chunk's last step, an eval record every train.eval_every steps
  before the end and one at the end."""
  try:
    cfg, total = record["config"], int(record["counts"]["steps"])
    log_every, eval_every = int(cfg["output"]["log_every"]) or 1, int(cfg["train"]["eval_every"])
  except (KeyError, TypeError, ValueError):  # an estimate only: a hand-made config counts one per step
    total, log_every, eval_every = 0, 1, 0
  train = last // log_every - after // log_every + (last % log_every != 0)
  evals = max(0, min(last, total - 1) // eval_every - after // eval_every) if eval_every > 0 else 0
  evals += after < total <= last  # the final evaluation
  return max(1, train + evals)


def _corrupt_warning(path: str, bad: list[tuple[int, str]], lost: int) -> str:
  listed = "; ".join(f"line {lineno}: {reason}" for lineno, reason in bad[:_MAX_LISTED])
  more = f"; and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
  return f"{path}: skipped {lost} corrupt line(s) — {listed}{more}"
