"""The run-dir contract (DESIGN.md): one place that knows the paths and file formats.

    <root>/<study>/<run_id>/
      config.json    {"study", "run_id", "config": resolved config, "counts": counting columns}; written once
      status.json    {"state", "step", "attempt", "updated_at", "host", "error"}
      metrics/<first_step:09d>-<last_step:09d>-a<attempt>.jsonl   immutable chunks (GCS cannot append)
      checkpoints/   orbax CheckpointManager
      events/        TensorBoard (optional)

Paths go through etils.epath, so a root may be local or gs://.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from typing import Any

from etils import epath

STATES = ("pending", "running", "done", "failed", "preempted")
CHUNK_NAME = re.compile(r"^(\d{9})-(\d{9})-a(\d+)\.jsonl$")


class UnreadableFile(ValueError):
  """config.json or status.json exists but does not parse: one run is unreadable, not the whole study."""


def chunk_name(first_step: int, last_step: int, attempt: int) -> str:
  return f"{first_step:09d}-{last_step:09d}-a{attempt}.jsonl"


def parse_chunk_name(name: str) -> tuple[int, int, int] | None:
  """(first_step, last_step, attempt) of a metrics chunk file name; None for other files."""
  match = CHUNK_NAME.match(name)
  return tuple(int(g) for g in match.groups()) if match else None


class RunDir:
  """One run's directory."""

  def __init__(self, path: str | os.PathLike | epath.Path):
    self.path = epath.Path(path)

  def __repr__(self) -> str:
    return f"RunDir({os.fspath(self.path)!r})"

  @property
  def config_path(self) -> epath.Path:
    return self.path / "config.json"

  @property
  def status_path(self) -> epath.Path:
    return self.path / "status.json"

  @property
  def metrics_dir(self) -> epath.Path:
    return self.path / "metrics"

  @property
  def checkpoints_dir(self) -> epath.Path:
    return self.path / "checkpoints"

  def orbax_directory(self) -> str:
    """checkpoints/ as orbax wants it: absolute (a root given relative to the working directory, like the
    default ./runs, is made so) or a URL."""
    path = os.fspath(self.checkpoints_dir)
    return path if "://" in path else os.path.abspath(path)

  @property
  def events_dir(self) -> epath.Path:
    return self.path / "events"

  # config.json -------------------------------------------------------------------------------

  def write_config(self, record: dict[str, Any]) -> bool:
    """Writes config.json once. Returns False when an identical one exists; raises when it differs."""
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    if self.config_path.exists():
      if self.read_config() != json.loads(text):
        raise ValueError(f"{self.config_path}: exists with a different config; a run dir's config is written once")
      return False
    if os.fspath(self.path).startswith("gs://") or self.path.exists():
      self.path.mkdir(parents=True, exist_ok=True)
      _atomic_write(self.config_path, text)
      return True
    # A new run dir appears whole, config included, so a collector never sees it without config.json.
    self.path.parent.mkdir(parents=True, exist_ok=True)
    staging = self.path.parent / f".{self.path.name}.{os.getpid()}.tmp"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "config.json").write_text(text)
    try:
      os.rename(os.fspath(staging), os.fspath(self.path))
    except OSError:  # another process created it first: fall back to comparing with its config
      (staging / "config.json").unlink()
      staging.rmdir()
      return self.write_config(record)
    return True

  def read_config(self) -> dict[str, Any]:
    if not self.config_path.exists():
      raise UnreadableFile(f"{self.path}: run dir has no config.json")
    return _read_json(self.config_path)

  # status.json -------------------------------------------------------------------------------

  def read_status(self) -> dict[str, Any] | None:
    """The status record, or None when the run has none yet."""
    if not self.status_path.exists():
      return None
    status = _read_json(self.status_path)
    if not isinstance(status, dict) or not {"state", "step", "attempt"} <= status.keys():
      raise UnreadableFile(f"{self.status_path}: not a status record (needs state, step and attempt)")
    return status

  def write_status(self, state: str, *, step: int = 0, attempt: int = 0, error: str | None = None,
                   timings: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """Replaces status.json in one write; `updated_at` (epoch seconds) doubles as the heartbeat.

    `timings` (seconds) says where the attempt's start-up went: `startup_s` from the call to the data
    and state being ready, `first_step_s` from then to the first step's metrics (compilation included).
    """
    if state not in STATES:
      raise ValueError(f"status.state: unknown {state!r}; expected one of {', '.join(STATES)}")
    record = {
      "state": state,
      "step": int(step),
      "attempt": int(attempt),
      "updated_at": time.time(),
      "host": socket.gethostname(),
      "error": error,
    }
    if timings:
      record["timings"] = {k: round(v, 3) for k, v in timings.items()}
    self.path.mkdir(parents=True, exist_ok=True)
    _atomic_write(self.status_path, json.dumps(record) + "\n")
    return record

  # metrics/ ----------------------------------------------------------------------------------

  def write_metrics(self, records: list[dict[str, Any]], attempt: int) -> epath.Path | None:
    """Writes one immutable chunk holding `records` (each with a "step"); None when empty."""
    if not records:
      return None
    steps = [int(r["step"]) for r in records]
    self.metrics_dir.mkdir(parents=True, exist_ok=True)
    path = self.metrics_dir / chunk_name(min(steps), max(steps), attempt)
    _atomic_write(path, "".join(json.dumps(r) + "\n" for r in records))
    return path

  def metric_chunks(self) -> list[epath.Path]:
    """Chunk files in (first_step, attempt) order; other files are ignored."""
    if not self.metrics_dir.exists():
      return []
    chunks = [p for p in self.metrics_dir.iterdir() if parse_chunk_name(p.name)]
    return sorted(chunks, key=lambda p: (parse_chunk_name(p.name)[0], parse_chunk_name(p.name)[2], p.name))

  def read_metrics(self) -> list[dict[str, Any]]:
    """Every record of every chunk, in chunk order (a resumed run's re-logged steps appear twice)."""
    return [json.loads(line) for chunk in self.metric_chunks() for line in chunk.read_text().splitlines()]


def _read_json(path: epath.Path) -> Any:
  """A JSON file's value; UnreadableFile naming the file when it is not JSON (truncated, binary)."""
  try:
    return json.loads(path.read_bytes())
  except json.JSONDecodeError as e:
    raise UnreadableFile(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
  except UnicodeDecodeError:
    raise UnreadableFile(f"{path}: not valid JSON (not UTF-8 text)") from None


def _atomic_write(path: epath.Path, text: str) -> None:
  """Readers never see a half-written file: write beside it, then rename (a GCS write is atomic)."""
  if os.fspath(path).startswith("gs://"):
    path.write_text(text)
    return
  tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
  tmp.write_text(text)
  os.replace(os.fspath(tmp), os.fspath(path))
