"""The optional tracker sinks: TensorBoard events read back with TensorBoard's reader, W&B offline.

`make test` installs both extras; without them (a bare install) these tests skip, except under CI.
"""

import json
import os

import pytest

from mixlaws import config, counting, metrics, rundir

RECORDS = [
  {"step": s, "tokens": 64 * s, "flops": 1e6 * s, "split": "train", "loss": 5.0 - 0.1 * s, "lr": 1e-3,
   "grad_norm": 1.0 + s, "load_cv": 0.5 / s, "router_entropy": 1.3, "step_time": 0.02, "mfu": 0.01}
  for s in (1, 2, 3)
] + [{"step": 3, "tokens": 192, "flops": 3e6, "split": "eval", "loss": 4.8}]  # fmt: skip


def _run(tmp_path, **output):
  cfg = config.resolve(config.apply_overrides(config.base_config(), [f"output.{k}={v}" for k, v in output.items()]))
  run = rundir.RunDir(tmp_path / "study" / "study-run")
  run.write_config({"study": "study", "run_id": "study-run", "config": cfg.to_dict(),
                    "counts": counting.run_counts(cfg).to_dict()})  # fmt: skip
  return run, cfg


if os.environ.get("CI"):
  import tensorboard  # noqa: F401  (CI must run the tests below: `make test` installs the extras)
  import tensorboardX  # noqa: F401
  import wandb  # noqa: F401


def test_trackers_are_off_by_default():
  cfg = config.resolve(config.base_config())
  assert cfg.output.tensorboard is False and cfg.output.wandb is False


def test_tensorboard_events_hold_every_scalar(tmp_path):
  pytest.importorskip("tensorboardX")
  event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
  run, cfg = _run(tmp_path, tensorboard=True)
  writer = metrics.MetricWriter(run, 0, tensorboard=cfg.output.tensorboard)
  for record in RECORDS:
    writer.add(record)
  writer.close()
  events = event_accumulator.EventAccumulator(str(run.events_dir))
  events.Reload()
  tags = set(events.Tags()["scalars"])
  assert {"train/loss", "train/lr", "train/grad_norm", "train/load_cv", "train/router_entropy", "train/mfu",
          "train/step_time", "eval/loss"} <= tags  # fmt: skip
  assert [(e.step, round(e.value, 5)) for e in events.Scalars("train/loss")] == [(1, 4.9), (2, 4.8), (3, 4.7)]
  assert [e.value for e in events.Scalars("train/grad_norm")] == [2.0, 3.0, 4.0]


def test_wandb_logs_offline_under_the_run_dir(tmp_path, monkeypatch):
  pytest.importorskip("wandb")
  monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is the default: no network, no account
  monkeypatch.setenv("WANDB_SILENT", "true")
  run, cfg = _run(tmp_path, wandb=True)
  writer = metrics.MetricWriter(run, 0, wandb=cfg.output.wandb)
  for record in RECORDS:
    writer.add(record)
  writer.close()
  import wandb

  wandb.teardown()  # waits for the W&B service to write out what it holds (it lags on a busy machine)
  (log,) = (run.path / "wandb" / "wandb").glob("offline-run-*-study-run/run-study-run.wandb")  # what `wandb sync` sends
  history = _history(log.read_bytes())
  assert [h["train/loss"] for h in history if "train/loss" in h] == pytest.approx([4.9, 4.8, 4.7])
  assert [h["_step"] for h in history] == [1, 2, 3]  # W&B keeps one row per step: step 3's eval joins its train row
  assert history[2]["train/router_entropy"] == 1.3 and history[2]["eval/loss"] == 4.8


def _history(data: bytes, block: int = 32768) -> list[dict]:
  """The logged rows of a .wandb file. wandb ships no reader; the file is a 7-byte header, then records
  in LevelDB's log format (blocks of 32 KiB; each chunk: CRC32, length (2 bytes LE), type: 1 full,
  2 first, 3 middle, 4 last), each record a wandb_internal_pb2.Record."""
  from wandb.proto import wandb_internal_pb2

  rows, pos, chunks = [], 7, b""
  while pos + 7 <= len(data):
    if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
      pos += block - pos % block
      continue
    length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
    chunks += data[pos + 7 : pos + 7 + length]
    pos += 7 + length
    if kind in (1, 4):
      record = wandb_internal_pb2.Record()
      record.ParseFromString(chunks)
      chunks = b""
      if record.WhichOneof("record_type") == "history":
        rows.append(
          {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
        )
  return rows


def test_a_missing_tracker_package_is_a_one_line_error(tmp_path, monkeypatch):
  import builtins

  real = builtins.__import__
  monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                      if name in ("wandb", "tensorboardX") else real(name, *a, **k))  # fmt: skip
  run, _ = _run(tmp_path)
  with pytest.raises(ValueError, match=r"output.wandb: needs the wandb package \(pip install 'mixlaws\[wandb\]'\)"):
    metrics.MetricWriter(run, 0, wandb=True)
  with pytest.raises(ValueError, match=r"mixlaws\[tensorboard\]"):
    metrics.MetricWriter(run, 0, tensorboard=True)
