"""Local workers on tiny real runs: each run trained once; SIGKILL and Ctrl-C mid-run lose nothing on relaunch."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from launch_helpers import chunk_attempts, claims, tiny_study, train_losses
from mixlaws.launch import local, local_multihost, supervise

from mixlaws import registry, rundir, sweep

LONG = {"train.steps": 120, "checkpoint.every_steps": 10}  # long enough to be caught between checkpoints
# Runs that differ only in checkpointing: the same numerics and the same compiled programs, so every
# worker after the first loads them from the compilation cache.
OTHERS = [{"train.steps": 120, "checkpoint.keep": keep} for keep in (1, 3)]


def _wait_until(predicate, procs, what, timeout=240):
  deadline = time.time() + timeout
  while not predicate():
    crashed = [p.args for p in procs if p.poll() not in (None, 0)]
    assert not crashed and time.time() < deadline, f"waiting for {what}: {crashed or 'timed out'}"
    time.sleep(0.02)


def _run_dir(root, spec):
  return rundir.RunDir(sweep.study_dir(root, spec.study) / spec.run_id)


@pytest.fixture
def one_device(monkeypatch):
  """Each worker process sees one CPU device (its runs' meshes take all devices)."""
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")


@pytest.mark.slow
def test_ctrl_c_and_sigkill_mid_run_lose_nothing_and_each_run_trains_once(data_dir, tmp_path, one_device):
  root = str(tmp_path)
  # Ctrl-C first (one worker, which also fills the compilation cache for the rest): the launcher passes
  # it on, the worker checkpoints its run as preempted and exits 75; a relaunch finishes the run.
  stop = registry.expand_study(tiny_study(data_dir, "tinystop", [LONG]))
  sweep.enqueue(stop, root)
  code = f"import sys; from mixlaws.launch import local; sys.exit(local.run('tinystop', {root!r}, display=False, every=0.05))"
  launcher = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  stopped = _run_dir(root, stop[0])
  _wait_until(lambda: stopped.metric_chunks(), [launcher], "a metrics chunk")  # written at a checkpoint
  launcher.send_signal(signal.SIGINT)
  output = launcher.communicate(timeout=240)[0]
  assert launcher.returncode == 75, output
  status = stopped.read_status()
  assert (status["state"], status["attempt"]) == ("preempted", 0) and 0 < status["step"] < 120, status
  assert (stopped.checkpoints_dir / str(status["step"])).exists()
  assert local.run("tinystop", root, display=False, every=0.05) == 0
  assert (stopped.read_status()["state"], stopped.read_status()["attempt"], claims(stopped.path)) == (
    "done",
    1,
    ["a0", "a1"],
  )

  # A sweep of four runs with two workers; one run checkpoints every 10 steps and its worker is killed
  # after the first, the others never checkpoint, so their losses are those of uninterrupted runs.
  specs = registry.expand_study(tiny_study(data_dir, "tiny", [LONG, {**LONG, "checkpoint.every_steps": 0}, *OTHERS]))
  killed, twin = specs[0], specs[1]
  assert sweep.enqueue(specs, root) == {"new": 4, "existing": 0}
  procs = supervise.start(local.commands("tiny", root, workers=2), sweep.study_dir(root, "tiny") / ".logs")
  run = _run_dir(root, killed)
  _wait_until(lambda: run.checkpoints_dir.exists() and any(p.name.isdigit() for p in run.checkpoints_dir.iterdir()),
              procs, "a checkpoint")  # fmt: skip
  victim = next(p for p in procs if p.pid == sweep.read_claim(run, 0)["pid"])
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  assert supervise.wait([p for p in procs if p is not victim], every=0.05) == [0]
  assert local.run("tiny", root, workers=1, display=False, every=0.05) == 0  # the relaunch

  for spec in specs:
    assert _run_dir(root, spec).read_status()["state"] == "done", spec.run_id
  for spec in specs[1:]:  # trained exactly once
    status, run_dir = _run_dir(root, spec).read_status(), _run_dir(root, spec).path
    assert (status["attempt"], claims(run_dir), chunk_attempts(run_dir)) == (0, ["a0"], {0}), spec.run_id
  assert (run.read_status()["attempt"], claims(run.path), chunk_attempts(run.path)) == (1, ["a0", "a1"], {0, 1})
  reference = train_losses(_run_dir(root, twin).path)
  assert list(reference) == list(range(1, 121))
  for resumed in (run, stopped):
    np.testing.assert_allclose(list(train_losses(resumed.path).values()), list(reference.values()), atol=1e-6, rtol=0)


@pytest.mark.slow
def test_multi_process_worker_trains_process_zeros_claim(data_dir, tmp_path, one_device):
  root = str(tmp_path)
  (spec,) = registry.expand_study(tiny_study(data_dir, "tinymh", [{}]))
  sweep.enqueue([spec], root)
  assert local_multihost.run("tinymh", root, processes=2, devices_per_process=1, display=False, every=0.05) == 0
  run = _run_dir(root, spec)
  assert (run.read_status()["state"], run.read_status()["step"], claims(run.path)) == ("done", 4, ["a0"])
  assert run.read_config()["config"]["distributed"]["num_processes"] == 1  # deployment stays out of the record
  logs = sweep.study_dir(root, "tinymh") / ".logs"
  for i in range(2):  # process 1 trained the run process 0 claimed, then both left together
    lines = (logs / f"worker-{i}.log").read_text().splitlines()
    assert f"{spec.run_id}: done" in lines and "worker: trained 1 run(s)" in lines, lines[-5:]
