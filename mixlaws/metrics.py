"""Metric records of a run: buffered, written as immutable JSONL chunks, and fanned out to optional trackers.

Only process 0 writes (the others get a writer that drops records). The chunk files are the
source of truth (DESIGN.md); TensorBoard and Weights & Biases are optional extra sinks behind the
same `add`, each off by default (output.tensorboard, output.wandb) and each an install extra.
"""

from __future__ import annotations

import math
import os
from typing import Any

from mixlaws.rundir import RunDir


class MetricWriter:
  """Buffers records and writes them as one chunk per `flush`; every record also goes to the trackers."""

  def __init__(
    self, run: RunDir, attempt: int, *, enabled: bool = True, tensorboard: bool = False, wandb: bool = False
  ):
    self.run = run
    self.attempt = attempt
    self.enabled = enabled
    self._buffer: list[dict[str, Any]] = []
    self._sinks = []
    if enabled and tensorboard:
      self._sinks.append(TensorBoardSink(run))
    if enabled and wandb:
      self._sinks.append(WandbSink(run, attempt))

  def add(self, record: dict[str, Any]) -> None:
    if not self.enabled:
      return
    record = {k: _plain(v) for k, v in record.items()}
    self._buffer.append(record)
    scalars = _scalars(record)
    for sink in self._sinks:
      sink.add(record["step"], scalars)

  def flush(self) -> None:
    """Writes the buffered records as one immutable chunk."""
    if not self.enabled or not self._buffer:
      return
    self.run.write_metrics(self._buffer, self.attempt)
    self._buffer = []
    for sink in self._sinks:
      sink.flush()

  def close(self) -> None:
    self.flush()
    for sink in self._sinks:
      sink.close()


def _plain(value: Any) -> Any:
  """JSON-ready Python scalars from numpy/JAX scalars."""
  if hasattr(value, "item"):
    value = value.item()
  return value


def _scalars(record: dict[str, Any]) -> dict[str, float]:
  """ "<split>/<name>" → value for each finite number of a record (loss, lr, grad_norm, router stats, mfu…)."""
  prefix = record.get("split", "train")
  return {
    f"{prefix}/{name}": float(value)
    for name, value in record.items()
    if name not in ("step", "split") and isinstance(value, (int, float)) and not isinstance(value, bool)
    and math.isfinite(value)
  }  # fmt: skip


class TensorBoardSink:
  """Scalars as TensorBoard events under run_dir/events (tensorboardX writes them; no TensorFlow)."""

  def __init__(self, run: RunDir):
    try:
      from tensorboardX import SummaryWriter
    except ImportError:
      raise ValueError(
        "output.tensorboard: needs the tensorboardX package (pip install 'mixlaws[tensorboard]')"
      ) from None
    self._writer = SummaryWriter(str(run.events_dir))

  def add(self, step: int, scalars: dict[str, float]) -> None:
    for tag, value in scalars.items():
      self._writer.add_scalar(tag, value, step)

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class WandbSink:
  """Scalars logged to a W&B run named by the run id, stored under run_dir/wandb.

  Offline unless WANDB_MODE says otherwise: nothing leaves the machine until `wandb sync`.
  A resumed attempt logs to the same W&B run id (the run id), so its steps continue the curve.
  """

  def __init__(self, run: RunDir, attempt: int):
    try:
      import wandb
    except ImportError:
      raise ValueError("output.wandb: needs the wandb package (pip install 'mixlaws[wandb]')") from None
    record = run.read_config() if run.config_path.exists() else {}
    directory = run.path / "wandb"
    directory.mkdir(parents=True, exist_ok=True)
    self._run = wandb.init(
      project=record.get("study", "mixlaws"),
      id=record.get("run_id", run.path.name),
      name=record.get("run_id", run.path.name),
      config={**record.get("config", {}), "attempt": attempt},
      dir=os.fspath(directory),
      mode=os.environ.get("WANDB_MODE", "offline"),
      resume="allow",
      reinit="create_new",
    )

  def add(self, step: int, scalars: dict[str, float]) -> None:
    self._run.log(scalars, step=step)

  def flush(self) -> None:
    pass  # the W&B service writes in the background

  def close(self) -> None:
    self._run.finish()
