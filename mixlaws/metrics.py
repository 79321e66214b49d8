"""Metric records of a run: buffered, written as immutable JSONL chunks, optionally to TensorBoard.

Only process 0 writes (the others get a writer that drops records). The chunk files are the
source of truth (DESIGN.md); TensorBoard is an optional extra sink behind the same `add`.
"""

from __future__ import annotations

import math
from typing import Any

from mixlaws.rundir import RunDir


class MetricWriter:
  """Buffers records and writes them as one chunk per `flush`."""

  def __init__(self, run: RunDir, attempt: int, *, enabled: bool = True, tensorboard: bool = False):
    self.run = run
    self.attempt = attempt
    self.enabled = enabled
    self._buffer: list[dict[str, Any]] = []
    self._tensorboard = _tensorboard_writer(run) if enabled and tensorboard else None

  def add(self, record: dict[str, Any]) -> None:
    if not self.enabled:
      return
    record = {k: _plain(v) for k, v in record.items()}
    self._buffer.append(record)
    if self._tensorboard is not None:
      prefix = record.get("split", "train")
      for name, value in record.items():
        if name not in ("step", "split") and isinstance(value, float) and math.isfinite(value):
          self._tensorboard.add_scalar(f"{prefix}/{name}", value, record["step"])

  def flush(self) -> None:
    """Writes the buffered records as one immutable chunk."""
    if not self.enabled or not self._buffer:
      return
    self.run.write_metrics(self._buffer, self.attempt)
    self._buffer = []
    if self._tensorboard is not None:
      self._tensorboard.flush()

  def close(self) -> None:
    self.flush()
    if self._tensorboard is not None:
      self._tensorboard.close()


def _plain(value: Any) -> Any:
  """JSON-ready Python scalars from numpy/JAX scalars."""
  if hasattr(value, "item"):
    value = value.item()
  return value


def _tensorboard_writer(run: RunDir):
  try:
    from tensorboardX import SummaryWriter
  except ImportError:
    raise ValueError(
      "output.tensorboard: needs the tensorboardX package (pip install 'mixlaws[tensorboard]')"
    ) from None
  return SummaryWriter(str(run.events_dir))
