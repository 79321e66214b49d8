"""The queue with WSD trunks and branches: a branch is claimable once its trunk has saved its fork.

A worker training a whole family, trunk first, is in tests/train/test_branches.py."""

from launch_helpers import tiny_base

from mixlaws import registry, rundir, sweep

# 128 tokens a step: budgets of 10 and 20 steps fork at steps 8 and 16.
BUDGETS = (1280, 2560)


def _family(root):
  base = tiny_base("", "train.steps=0", "train.tokens=1280")
  specs = registry.expand_study(registry.Study("fam", "", base, registry.axis("train.tokens", BUDGETS), cooldown=0.2))
  sweep.enqueue(specs, root)
  return specs


def test_branches_wait_for_their_fork_then_another_worker_takes_them(tmp_path):
  trunk, first, last = _family(tmp_path)
  assert trunk.lineage.fork_steps == (8, 16)
  won = sweep.claim_next(tmp_path, "fam")
  assert won.run_id == trunk.run_id  # the branches cannot start yet
  assert sweep.claim_next(tmp_path, "fam") is None
  assert sorted(sweep.waiting_for_forks(tmp_path, "fam")) == sorted([first.run_id, last.run_id])
  (sweep.study_dir(tmp_path, "fam") / trunk.run_id / "forks" / "8").mkdir(parents=True)  # the trunk passed step 8
  second = sweep.claim_next(tmp_path, "fam")  # a second worker trains it while the trunk goes on
  assert second.run_id == first.run_id
  assert sweep.waiting_for_forks(tmp_path, "fam") == [last.run_id]
  rundir.RunDir(won.run.path).write_status("failed", attempt=won.attempt, error="boom")
  assert sweep.waiting_for_forks(tmp_path, "fam") == []  # a failed trunk leaves nothing to wait for
