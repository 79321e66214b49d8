"""One run end to end on 8 fake CPU devices: sharding, exact resume, preemption, failure, pre-flight."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import train_helpers
from train_helpers import losses, records, tiny

from mixlaws import optim, preflight, rundir, sharding, train

MOE = train_helpers.MOE


@pytest.mark.parametrize("family", ["dense", "moe"])
def test_sharded_equals_unsharded(family, data_dir, tmp_path):
  extra = MOE if family == "moe" else []
  # MoE: expert parallelism over 4 devices (the explicit all-to-all path), experts also FSDP-split over 2.
  mesh = (
    ("mesh.data=1", "mesh.fsdp=2", "mesh.expert=4")
    if family == "moe"
    else ("mesh.data=2", "mesh.fsdp=2", "mesh.expert=2")
  )
  sharded = tiny(data_dir, *mesh, *extra)
  single = tiny(data_dir, "mesh.data=1", *extra, n_devices=1)
  assert train.train(sharded, str(tmp_path / "sharded"), progress=False) == "done"
  assert train.train(single, str(tmp_path / "single"), progress=False, devices=jax.devices()[:1]) == "done"
  np.testing.assert_allclose(losses(tmp_path / "sharded"), losses(tmp_path / "single"), atol=1e-5, rtol=0)
  assert len(losses(tmp_path / "sharded")) == 5


def test_every_parameter_and_moment_has_its_sharding(data_dir):
  cfg = tiny(data_dir, "mesh.data=2", "mesh.fsdp=2", "mesh.expert=2", *MOE)
  mesh = sharding.make_mesh(cfg.mesh)
  state, _, _ = train.init_state(cfg, mesh, optim.optimizer(cfg))
  adam = state["opt_state"][1][0]  # chain(clip, adamw) → adamw's ScaleByAdamState
  checked = 0
  for tree in (state["params"], adam.mu, adam.nu):
    for var in jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, train.nnx.Variable)):
      expected = sharding.logical_to_spec(sharding.logical_axes(var), cfg.mesh.param_rules)
      assert var.get_value().sharding.is_equivalent_to(jax.sharding.NamedSharding(mesh, expected), var.ndim)
      checked += 1
  assert checked >= 3 * 8
  experts = [v for v in jax.tree.leaves(state["params"], is_leaf=lambda x: isinstance(x, train.nnx.Variable))
             if "expert" in sharding.logical_axes(v)]  # fmt: skip
  assert experts and all("expert" in str(v.get_value().sharding.spec) for v in experts)


def _subprocess(run_dir, env_extra=None):
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu",
         **(env_extra or {})}  # fmt: skip
  cmd = [sys.executable, "-m", "mixlaws", "train", str(run_dir), "--quiet"]
  return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(run_dir, proc, timeout=120):
  ckpt = rundir.RunDir(run_dir).checkpoints_dir
  deadline = time.time() + timeout
  while time.time() < deadline:
    if ckpt.exists() and any(p.name.isdigit() for p in ckpt.iterdir()):
      return
    assert proc.poll() is None, proc.stdout.read()
    time.sleep(0.05)
  raise AssertionError("no checkpoint appeared")


def test_exact_resume_after_sigkill(data_dir, tmp_path):
  cfg = tiny(data_dir, "train.steps=120", "checkpoint.every_steps=20", "train.eval_every=40")
  reference, killed = tmp_path / "reference", tmp_path / "killed"
  assert train.train(cfg, str(reference), progress=False) == "done"
  rundir.RunDir(killed).write_config({"study": "t", "run_id": "killed", "config": cfg.to_dict(), "counts": {}})
  proc = _subprocess(killed)
  _wait_for_checkpoint(killed, proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert rundir.RunDir(killed).read_status()["state"] == "running"  # died without a word
  assert train.train(cfg, str(killed), progress=False) == "done"
  assert rundir.RunDir(killed).read_status()["attempt"] == 1
  np.testing.assert_allclose(losses(killed), losses(reference), atol=1e-6, rtol=0)
  assert list(records(killed)) == list(range(1, 121))
  eval_ref, eval_resumed = records(reference, "eval"), records(killed, "eval")
  assert list(eval_ref) == list(eval_resumed) == [40, 80, 120]
  np.testing.assert_allclose([r["loss"] for r in eval_resumed.values()], [r["loss"] for r in eval_ref.values()],
                             atol=1e-6)  # fmt: skip


def test_sigterm_checkpoints_the_current_step_and_marks_preempted(data_dir, tmp_path):
  cfg = tiny(data_dir, "train.steps=100000", "checkpoint.every_steps=5")
  run = rundir.RunDir(tmp_path / "pre")
  run.write_config({"study": "t", "run_id": "pre", "config": cfg.to_dict(), "counts": {}})
  proc = _subprocess(run.path)
  _wait_for_checkpoint(run.path, proc)
  proc.send_signal(signal.SIGTERM)
  output, _ = proc.communicate(timeout=120)
  assert proc.returncode == 75, output
  status = run.read_status()
  assert status["state"] == "preempted" and "SIGTERM" in status["error"]
  saved = max(int(p.name) for p in run.checkpoints_dir.iterdir() if p.name.isdigit())
  assert saved == status["step"] and max(records(run.path)) == status["step"]


def test_nan_stops_the_run_as_failed_with_the_step(data_dir, tmp_path):
  cfg = tiny(data_dir, "train.lr=1e9", "train.grad_clip=0", "train.steps=50")
  assert train.train(cfg, str(tmp_path / "nan"), progress=False) == "failed"
  status = rundir.RunDir(tmp_path / "nan").read_status()
  assert status["state"] == "failed"
  bad_step = int(status["error"].split(":")[0].split()[1])
  assert status["error"].startswith(f"step {bad_step}: ") and status["step"] == bad_step - 1  # the last finite step
  assert all(np.isfinite(rec["loss"]) for rec in records(tmp_path / "nan").values())


def test_rampup_and_eval_records_in_a_run_root_relative_to_the_working_directory(data_dir, tmp_path, monkeypatch):
  cfg = tiny(data_dir, "train.batch_rampup=8:256", "train.batch_size=16", "train.steps=6", "train.eval_every=3",
             "checkpoint.every_steps=4")  # fmt: skip
  monkeypatch.chdir(tmp_path)
  assert train.train(cfg, "runs/ramp", progress=False) == "done"  # as under the default root ./runs
  assert rundir.RunDir(tmp_path / "runs" / "ramp").checkpoints_dir.joinpath("4").is_dir()
  timings = rundir.RunDir(tmp_path / "runs" / "ramp").read_status()["timings"]
  assert timings["startup_s"] > 0 and timings["first_step_s"] > 0
  monkeypatch.chdir(tmp_path / "runs")
  recs = records("ramp")
  # 256 tokens at 8 x 16 per step: two steps of 8 sequences, then 16 (Ludziejewski et al.-style ramp-up)
  assert [recs[s]["tokens"] for s in range(1, 7)] == [128, 256, 512, 768, 1024, 1280]
  assert list(records("ramp", "eval")) == [3, 6]
  assert all(r["flops"] > 0 and 0 < r["lr"] and "mfu" in r for r in recs.values())


def test_preflight_accepts_a_small_model_and_rejects_one_ten_times_too_large(data_dir):
  small = tiny(data_dir, n_devices=None)
  assert preflight.preflight(small, topology="v5e:2x2").fits
  # 16 blocks of 13·d² at d = 8192 ≈ 14B parameters; float32 weights, gradients and two AdamW moments
  # take 16 bytes each ≈ 208 GiB, more than ten times one v5e chip's 16 GiB.
  huge = tiny(data_dir, "model.d_model=8192", "model.n_layers=16", "model.n_heads=64", n_devices=None)
  verdict = preflight.preflight(huge, topology="v5e:1x1")
  assert not verdict.fits and verdict.bytes_per_device > verdict.limit_bytes
  assert verdict.reason.startswith("does not fit: needs")
