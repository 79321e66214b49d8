"""Runs under fire: killed at each stage, raced by `mixlaws train` and a worker, diverging to NaN."""

import dataclasses
import json
import os
import shutil

import pytest
from click.testing import CliRunner
from launch_helpers import train_losses

from mixlaws import cli, collect, store, sweep, train
from mixlaws import data as data_lib

STUDY = "rel"  # tests/reliability/conftest.py


class _Killed(BaseException):
  """kill -9 in-process: nothing below the raise runs, no handler writes a status or flushes metrics."""


def _kill_at_batch(monkeypatch, n):
  """The process dies as the loop asks for its n-th batch (n=1: before the first step; n=3: just after
  the checkpoint of step 2)."""
  real, calls = data_lib.TrainIterator.next, []

  def next_or_die(self, batch_size):
    calls.append(1)
    if len(calls) == n:
      raise _Killed
    return real(self, batch_size)

  monkeypatch.setattr(data_lib.TrainIterator, "next", next_or_die)


def test_killed_at_each_stage_the_run_resumes_to_the_same_losses(study, monkeypatch):
  run, before = study.trained, train_losses(study.trained.path)
  shutil.rmtree(run.checkpoints_dir)
  shutil.rmtree(run.metrics_dir)
  run.write_status("pending")
  for attempt, (batch, saved) in enumerate([(1, 0), (3, 2)]):
    with monkeypatch.context() as m:
      _kill_at_batch(m, batch)
      with pytest.raises(_Killed):
        train.train(study.cfg, os.fspath(run.path), attempt=attempt, progress=False)
    status = run.read_status()
    assert (status["state"], status["step"], status["attempt"]) == ("running", saved, attempt)  # the saved step
  assert train.train(study.cfg, os.fspath(run.path), progress=False) == "done"
  assert train_losses(run.path) == before
  assert run.read_status()["attempt"] == 2


def test_a_collect_killed_between_runs_leaves_a_store_the_next_collect_completes(study, monkeypatch, tmp_path):
  real, calls = store.Store.write_run, []

  def write_or_die(self, *args):
    calls.append(1)
    if len(calls) == 2:
      raise _Killed
    return real(self, *args)

  with monkeypatch.context() as m:
    m.setattr(store.Store, "write_run", write_or_die)
    with pytest.raises(_Killed):
      collect.collect(study.root, STUDY)
  collect.collect(study.root, STUDY)
  collect.collect(study.root, STUDY, tmp_path / "fresh.sqlite")
  with store.Store(store.default_path(study.root)) as resumed, store.Store(tmp_path / "fresh.sqlite") as fresh:
    assert resumed.runs(STUDY).equals(fresh.runs(STUDY))
    assert resumed.curves(STUDY, names=None).equals(fresh.curves(STUDY, names=None))
    assert len(resumed.runs(STUDY)) == 2


def test_train_refuses_a_run_a_worker_holds_and_names_the_holder(study):
  won = sweep.claim(study.pending)  # a live worker (this process) holds attempt 0
  assert won is not None
  result = CliRunner().invoke(cli.main, ["train", os.fspath(study.pending.path), "--quiet"])
  assert result.exit_code == 2, result.output
  assert result.stderr == (
    f"error: {study.pending.path}: held by attempt 0 (host {os.uname().nodename}, pid {os.getpid()}, at step 0); "
    "wait for it, or stop that process first\n"
  )
  assert not study.pending.checkpoints_dir.exists() and not study.pending.metrics_dir.exists()


def test_a_worker_skips_a_run_that_train_holds(study, monkeypatch):
  seen = {}

  def training(cfg, run_dir, *, attempt=None, progress=True):
    seen["attempt"] = attempt
    seen["worker took"] = sweep.claim_next(study.root, STUDY)  # a worker looking while `train` trains
    return "done"

  monkeypatch.setattr(train, "train", training)
  result = CliRunner().invoke(cli.main, ["train", os.fspath(study.pending.path), "--quiet"])
  assert result.exit_code == 0, result.output
  assert seen == {"attempt": 0, "worker took": None}
  assert json.loads(sweep.claim_path(study.pending, 0).read_text())["pid"] == os.getpid()


def test_nan_records_the_last_finite_step_not_step_0(study):
  cfg = dataclasses.replace(study.cfg, train=dataclasses.replace(study.cfg.train, lr=1e6))
  assert train.train(cfg, os.fspath(study.pending.path), attempt=0, progress=False) == "failed"
  status = study.pending.read_status()
  assert status["error"] == "step 2: grad_norm is nan" and status["step"] == 1
  result = CliRunner().invoke(cli.main, ["status", STUDY, "--root", os.fspath(study.root), "--format", "json"])
  assert {r["run_id"]: r["step"] for r in json.loads(result.stdout)["runs"]}[study.pending.path.name] == 1
  collect.collect(study.root, STUDY)
  with store.Store(store.default_path(study.root)) as st:
    assert st.runs(STUDY).set_index("run_id").loc[study.pending.path.name, "step"] == 1
