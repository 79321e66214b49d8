"""The queue without training: enqueueing once, status summaries, dry runs, gs:// claims, TPU slice types."""

import json
import threading
import time

import pytest
from click.testing import CliRunner
from launch_helpers import tiny_study
from mixlaws.launch import common

from mixlaws import accelerators, cli, registry, rundir, sweep


@pytest.fixture
def queue(tmp_path):
  specs = registry.expand_study(tiny_study("", "q", registry.axis("train.seed", [1, 2, 3, 4, 5])))
  assert sweep.enqueue(specs, tmp_path) == {"new": 5, "existing": 0}
  return tmp_path, [rundir.RunDir(sweep.study_dir(tmp_path, "q") / s.run_id) for s in specs], specs


def test_enqueue_writes_once_and_never_overwrites_a_status(queue):
  root, runs, specs = queue
  runs[0].write_status("done", step=4)
  runs[1].write_status("failed", step=2, error="boom")
  assert sweep.enqueue(specs, root) == {"new": 0, "existing": 5}
  assert [r.read_status()["state"] for r in runs[:3]] == ["done", "failed", "pending"]
  changed = registry.RunSpec(specs[0].study, specs[0].run_id, specs[1].config, specs[1].counts)
  with pytest.raises(ValueError, match="exists with a different config"):
    sweep.enqueue([changed], root)


def test_sweep_view_prints_a_line_for_each_run_that_ends_while_it_watches(queue, capsys):
  from mixlaws.launch import progress

  root, runs, _ = queue
  runs[0].write_status("done", step=4)  # ended before the view: no line
  view = progress.SweepView(str(root), "q")
  view.update()
  runs[1].write_metrics([{"step": 4, "split": "train", "loss": 2.5}], attempt=0)
  runs[1].write_status("done", step=4)
  runs[2].write_status("failed", step=2, error="boom")
  view.update()
  view.update()  # each ended run is announced once
  view.close()
  out = capsys.readouterr().out
  assert (
    out.count(runs[1].path.name) == 1 and f"[2/5 done] {runs[1].path.name}: 4 steps, final train loss 2.5000" in out
  )
  assert out.count(runs[2].path.name) == 1 and f"{runs[2].path.name}: failed at step 2" in out
  assert runs[0].path.name not in out


def test_status_counts_states_and_spots_dead_workers(queue):
  root, runs, _ = queue
  runs[0].write_status("done", step=4)
  runs[1].write_status("failed", step=2, error="ValueError: boom")
  assert sweep.claim(runs[2]).attempt == 0  # held by this (live) process
  assert sweep.claim(runs[3]).attempt == 0
  record = sweep.read_claim(runs[3], 0)
  sweep.claim_path(runs[3], 0).write_text(json.dumps({**record, "heartbeat_at": 0.0}))
  status = runs[3].read_status()
  runs[3].status_path.write_text(json.dumps({**status, "updated_at": time.time() - 1000}))  # silent for 1000 s
  result = CliRunner().invoke(cli.main, ["status", "q", "--root", str(root), "--format", "json"])
  assert result.exit_code == 0, result.output
  shown = json.loads(result.output)
  assert shown["counts"] == {
    "pending": 1,
    "running": 1,
    "done": 1,
    "failed": 1,
    "preempted": 0,
    "stale": 1,
    "unreadable": 0,
  }
  ages = {r["run_id"]: r["heartbeat_age"] for r in shown["runs"]}
  assert ages[runs[3].path.name] == pytest.approx(1000, abs=60) and ages[runs[2].path.name] < 60
  assert sweep.remaining(sweep.scan(root, "q")) == (2, 1)  # pending + stale can be taken; one is held
  assert sweep.remaining(sweep.scan(root, "q"), retry_failed=True) == (3, 1)
  table = CliRunner().invoke(cli.main, ["status", "q", "--root", str(root)])
  assert "1 pending, 1 running, 1 done, 1 failed, 1 stale" in table.output and "ValueError: boom" in table.output
  missing = CliRunner().invoke(cli.main, ["status", "nope", "--root", str(root)])
  assert missing.exit_code == 2 and missing.output.startswith("error: ") and "`mixlaws run nope`" in missing.output


def test_local_dry_run_prints_commands_and_writes_nothing(tmp_path):
  root = tmp_path / "runs"
  result = CliRunner().invoke(cli.main, ["run", "smoke", "--dry-run", "--workers", "2", "--root", str(root)])
  assert result.exit_code == 0, result.output
  lines = result.output.splitlines()
  assert lines[0].startswith(f"# queue: {len(registry.expand('smoke'))} runs under")
  assert len(lines) == 3 and all(" -m mixlaws worker --root " in line for line in lines[1:])
  assert not root.exists()
  bad = CliRunner().invoke(cli.main, ["run", "smoke", "--backend", "tpu-vm", "--dry-run"])
  assert (
    bad.exit_code == 2
    and bad.output == "error: --accelerator-type: the tpu-vm backend needs a slice type, e.g. v5p-128\n"
  )


class _FakeBucket:
  """GCS's side of a generation-match precondition: a create with if_generation_match=0 fails if the object exists."""

  def __init__(self):
    self.objects, self.lock = {}, threading.Lock()

  def blob(self, name):
    bucket = self

    class Blob:
      def upload_from_string(self, text, if_generation_match=None):
        from google.api_core import exceptions

        with bucket.lock:
          if if_generation_match == 0 and name in bucket.objects:
            raise exceptions.PreconditionFailed(f"{name}: generation does not match")
          bucket.objects[name] = text

    return Blob()


def test_gs_claims_use_a_generation_match_precondition(monkeypatch):
  pytest.importorskip("google.cloud.storage")
  from google.cloud import storage

  bucket = _FakeBucket()
  monkeypatch.setattr(storage, "Client", lambda: type("Client", (), {"bucket": lambda self, name: bucket})())
  path = sweep.epath.Path("gs://runs-bucket/study/run/claims/a0")
  barrier = threading.Barrier(8)

  def contend(_):
    barrier.wait()
    return sweep.create_exclusive(path, "claim")

  threads = [threading.Thread(target=lambda i=i: results.append(contend(i))) for i in range(8)]
  results = []
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert sorted(results) == [False] * 7 + [True]
  assert bucket.objects == {"study/run/claims/a0": "claim"}


def test_tpu_slice_types():
  cases = {"v5p-128": (64, 16, "4x4x4"), "v5p-8": (4, 1, "2x2x1"), "v4-32": (16, 4, "2x2x4"),
           "v5e-16": (16, 4, "4x4"), "v5litepod-8": (8, 1, "2x4"), "v6e-256": (256, 64, "16x16")}  # fmt: skip
  for name, (chips, hosts, topology) in cases.items():
    tpu = accelerators.tpu_slice(name)
    assert (tpu.chips, tpu.hosts, tpu.topology) == (chips, hosts, topology), name
  assert accelerators.tpu_slice("v5e-16").accelerator_type == "v5litepod-16"
  assert accelerators.tpu_slice("v5p-128").topology_name == "v5p:4x4x4"
  for bad in ("v5p-12", "v7-8", "v5p", "v5p-x"):
    with pytest.raises(ValueError, match="^accelerator type: "):
      accelerators.tpu_slice(bad)
  packed = common.packed_commands(["worker", "--", "q"], accelerators.tpu_slice("v5p-8").chips_per_host)
  envs = [dict(c.env) for c in packed]
  assert [e["TPU_VISIBLE_CHIPS"] for e in envs] == ["0", "1", "2", "3"]
  assert len({e["TPU_PROCESS_PORT"] for e in envs}) == 4 and all(e["TPU_PROCESS_BOUNDS"] == "1,1,1" for e in envs)


def test_a_packed_worker_runs_one_worker_per_chip(tmp_path):
  result = CliRunner().invoke(cli.main, ["worker", "--root", str(tmp_path), "--quiet", "--pack-chips", "2", "--", "q"])
  assert result.exit_code == 0, result.output


def test_a_cloud_launcher_watches_the_queue_until_done_and_exits_75_on_ctrl_c(queue):
  root, runs, _ = queue
  seen = []

  class Fake(common.QueueLauncher):
    def step(self, takeable):
      seen.append(takeable)
      if len(seen) == 1:
        for run in runs:
          run.write_status("done", step=4)
      else:
        raise KeyboardInterrupt

    def finish(self):
      seen.append("finish")

    def interrupted(self):
      seen.append("interrupted")

  options = type("Options", (), {"poll": 0.0})()
  assert Fake(None, "q", str(root), common.DEFAULT_WORKER, options, print).loop() == 0
  assert seen == [5, "finish"]
  runs[0].write_status("pending")
  assert Fake(None, "q", str(root), common.DEFAULT_WORKER, options, print).loop() == 75
  assert seen[2:] == [1, "interrupted"]
