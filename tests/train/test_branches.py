"""WSD cooldown branches: a branch trains exactly the standalone wsd run of its budget, and kill -9 of a
trunk (past a fork) or of a branch resumes to identical curves."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from train_helpers import losses, records

from mixlaws import config, registry, rundir, sweep, train

# Two budgets with a batch ramp-up: 8 sequences of 16 tokens until 2,048 tokens (16 steps), then 16.
# 5,120 tokens = 28 steps, decay from 4,096 (step 24); 10,240 tokens = 48 steps, decay from 8,192 (step 40).
BUDGETS = (5120, 10240)
FORKS = (24, 40)
ENDS = (28, 48)


def _study(data_dir):
  base = config.apply_overrides(config.base_config(), [
    "model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.vocab_size=259", "model.seq_len=16",
    "train.batch_size=16", "train.batch_rampup=8:2048", "train.lr=3e-3", "train.warmup_fraction=0",
    "train.warmup_tokens=512", "train.eval_tokens=256", "checkpoint.every_steps=5", "data.max_documents=40",
    f"data.data_dir={data_dir}",
  ])  # fmt: skip
  return registry.Study("wsdt", "", base, registry.axis("train.tokens", BUDGETS), cooldown=0.2)


@pytest.fixture(scope="module")
def family(data_dir, tmp_path_factory):
  """The specs, and each branch's config trained standalone (from scratch, no lineage) as the reference."""
  specs = registry.expand_study(_study(data_dir))
  refs = tmp_path_factory.mktemp("standalone")
  for spec in specs[1:]:
    assert train.train(spec.config, str(refs / spec.run_id), progress=False) == "done"
  return specs, refs


def _tree_digest(path):
  """Names, sizes and contents of every file under `path`: any write to the trunk changes it."""
  h = hashlib.sha256()
  for dirpath, _, files in sorted(os.walk(path)):
    for name in sorted(files):
      full = os.path.join(dirpath, name)
      h.update(full.encode())
      with open(full, "rb") as f:
        h.update(f.read())
  return h.hexdigest()


def test_expansion_gives_one_trunk_with_forks_at_the_decay_starts(family):
  specs, _ = family
  trunk, *branches = specs
  assert trunk.lineage.role == "trunk" and "-trunk-" in trunk.run_id
  assert trunk.lineage.fork_steps == FORKS and trunk.counts.steps == FORKS[-1]
  assert trunk.config.train.schedule == "constant"
  assert [b.lineage.fork_steps[0] for b in branches] == list(FORKS)
  assert [b.counts.steps for b in branches] == list(ENDS)
  assert [b.lineage.cooldown_tokens for b in branches] == [1024, 2048]  # 20% of each budget
  assert all(b.lineage.trunk == trunk.run_id and b.config.train.schedule == "wsd" for b in branches)
  again = registry.expand_study(_study(trunk.config.data.data_dir))
  assert [s.run_id for s in again] == [s.run_id for s in specs]  # stable ids


def test_branch_losses_equal_the_standalone_wsd_run(family, tmp_path):
  specs, refs = family
  sweep.enqueue(specs, tmp_path)
  trunk, *branches = specs
  trunk_dir = tmp_path / "wsdt" / trunk.run_id
  digests = []  # the trunk's files when it is done, before any branch starts

  def log(line):
    if line == f"{trunk.run_id}: done":
      digests.append(_tree_digest(trunk_dir))

  # One worker: the branches cannot be claimed before their forks exist, so it trains the trunk first.
  report = sweep.work(tmp_path, "wsdt", log=log)
  assert report.trained[0] == (trunk.run_id, 0, "done")
  assert sorted(report.trained[1:]) == sorted((b.run_id, 0, "done") for b in branches)
  assert sorted(int(p.name) for p in (trunk_dir / "forks").iterdir()) == list(FORKS)
  for branch, fork, end in zip(branches, FORKS, ENDS):
    branch_dir = tmp_path / "wsdt" / branch.run_id
    reference = refs / branch.run_id
    assert list(records(branch_dir)) == list(range(fork + 1, end + 1))
    np.testing.assert_allclose(losses(branch_dir), losses(reference)[fork:], atol=1e-6, rtol=0)
    np.testing.assert_allclose(losses(trunk_dir)[:fork], losses(reference)[:fork], atol=1e-6, rtol=0)
    lrs = [r["lr"] for r in records(branch_dir).values()]
    assert lrs[0] > lrs[-1] > 0  # the branch cools down
    ((_, final),) = records(branch_dir, "eval").items()
    assert final["loss"] == pytest.approx(records(reference, "eval")[end]["loss"], abs=1e-6)
  assert len(digests) == 1 and _tree_digest(trunk_dir) == digests[0]  # branches never write to the trunk's files


# Kills itself with SIGKILL at a chosen point: right after saving its first fork (a trunk), or right
# after its first own checkpoint (a branch) — a deterministic kill -9, with no cleanup of any kind.
KILLER = """
import os, signal, sys
from mixlaws import cli, train
if sys.argv[2] == "fork":
  save_fork = train._save_fork
  def saved_then_killed(*args):
    save_fork(*args)
    os.kill(os.getpid(), signal.SIGKILL)
  train._save_fork = saved_then_killed
else:
  wait = train.ocp.CheckpointManager.wait_until_finished
  def saved_then_killed(self):
    wait(self)
    os.kill(os.getpid(), signal.SIGKILL)
  train.ocp.CheckpointManager.wait_until_finished = saved_then_killed
cli.main(["train", sys.argv[1], "--quiet"])
"""


def _killed_at(run_dir, point):
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, "-c", KILLER, str(run_dir), point], env=env, capture_output=True, text=True)
  assert proc.returncode == -9, proc.stdout + proc.stderr
  assert rundir.RunDir(run_dir).read_status()["state"] == "running"  # died without a word


def test_kill_9_of_trunk_past_a_fork_and_of_a_branch_resume_exactly(family, tmp_path):
  specs, refs = family
  sweep.enqueue(specs, tmp_path)
  trunk, first, last = specs
  trunk_dir, last_dir = tmp_path / "wsdt" / trunk.run_id, tmp_path / "wsdt" / last.run_id
  _killed_at(trunk_dir, "fork")  # after the fork at step 24; its newest checkpoint is step 20
  assert [p.name for p in (trunk_dir / "forks").iterdir()] == [str(FORKS[0])]
  assert sweep.fork_ready(rundir.RunDir(tmp_path / "wsdt" / first.run_id))
  assert not sweep.fork_ready(rundir.RunDir(last_dir))  # its fork is not there yet: not claimable
  assert train.train(trunk.config, str(trunk_dir), progress=False) == "done"
  np.testing.assert_allclose(losses(trunk_dir), losses(refs / last.run_id)[: FORKS[-1]], atol=1e-6, rtol=0)
  _killed_at(last_dir, "checkpoint")  # after its own checkpoint at step 45
  assert train.train(last.config, str(last_dir), progress=False) == "done"
  assert list(records(last_dir)) == list(range(FORKS[-1] + 1, ENDS[-1] + 1))
  np.testing.assert_allclose(losses(last_dir), losses(refs / last.run_id)[FORKS[-1] :], atol=1e-6, rtol=0)
