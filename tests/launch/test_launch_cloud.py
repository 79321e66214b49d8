"""tpu-vm and xpk: exact dry-run commands, one-line errors before anything is created, and the launch
loop played against stand-in `gcloud` and `xpk` executables (created, preempted, finished, deleted)."""

import contextlib
import json
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from launch_helpers import tiny_study
from mixlaws.launch import common, tpu_vm, xpk

from mixlaws import cli, registry, sweep

PACKAGE = "mixlaws[tpu,gcp] @ git+https://example.com/mixlaws.git"
WHERE = ["--project", "proj", "--zone", "us-east5-a"]


def _worker_line(root, study, *extra):
  return shlex.join(["bash", "-c", common.bootstrap_script(), "bootstrap", PACKAGE, "worker", "--root", root,
                     "--quiet", "--stale-after", "300", *extra, "--", study])  # fmt: skip


def _commands(output):
  """The printed commands as a shell reads them: a quoted argument (the bootstrap script) spans lines."""
  commands, pending = [], ""
  for line in output.splitlines():
    if not pending and (not line or line.startswith("#")):
      continue
    pending += line + "\n"
    try:
      commands.append(shlex.split(pending))
    except ValueError:  # an open quote: the command goes on on the next line
      continue
    pending = ""
  assert not pending, pending
  return commands


def test_tpu_vm_dry_run_for_two_v5p_slices():
  args = ["run", "smoke", "--backend", "tpu-vm", "--dry-run", "--accelerator-type", "v5p-128", "--slices", "2",
          "--name", "sweep", *WHERE, "--root", "gs://bucket/runs", "--package", PACKAGE, "--provisioning", "spot"]  # fmt: skip
  result = CliRunner().invoke(cli.main, args, env={"PATH": ""})  # prints the plan without gcloud or xpk
  assert result.exit_code == 0, result.output
  qr = ["gcloud", "compute", "tpus", "queued-resources"]
  worker = _worker_line("gs://bucket/runs", "smoke", "--tpu-pod")  # 16 hosts: one program over the slice
  expected = [
    *([*qr, "create", n, "--node-id", n, *WHERE, "--accelerator-type", "v5p-128", "--runtime-version",
       "v2-alpha-tpuv5", "--spot"] for n in ("sweep-0", "sweep-1")),
    *([*qr, "describe", n, *WHERE, "--format", "value(state.state)"] for n in ("sweep-0", "sweep-1")),
    *(["gcloud", "compute", "tpus", "tpu-vm", "ssh", n, *WHERE, "--worker=all", "--command", worker]
      for n in ("sweep-0", "sweep-1")),
    *([*qr, "delete", n, *WHERE, "--force", "--quiet"] for n in ("sweep-0", "sweep-1")),
  ]  # fmt: skip
  assert _commands(result.output) == expected


def test_xpk_dry_run_for_two_v5p_slices():
  args = ["run", "smoke", "--backend", "xpk", "--dry-run", "--accelerator-type", "v5p-16", "--slices", "2",
          "--cluster", "tpus", "--name", "sweep", *WHERE, "--root", "gs://bucket/runs", "--package", PACKAGE,
          "--pack-chips"]  # fmt: skip
  result = CliRunner().invoke(cli.main, args, env={"PATH": ""})
  assert result.exit_code == 0, result.output
  where = ["--cluster", "tpus", *WHERE]
  worker = _worker_line("gs://bucket/runs", "smoke", "--pack-chips", "4")  # 4 single-chip workers per host
  expected = [
    *(["xpk", "workload", "create", *where, "--workload", n, "--tpu-type", "v5p-16", "--num-slices", "1",
       "--docker-image", "python:3.11", "--max-restarts", "10", "--command", worker] for n in ("sweep-0", "sweep-1")),
    ["xpk", "workload", "list", *where, "--filter-by-job", "sweep"],
    *(["xpk", "workload", "delete", *where, "--workload", n] for n in ("sweep-0", "sweep-1")),
  ]  # fmt: skip
  assert _commands(result.output) == expected


@pytest.fixture
def cloud(tmp_path, monkeypatch):
  """gcloud and xpk stand-ins on PATH; returns (write scenario, read calls)."""
  bin_dir, home = tmp_path / "bin", tmp_path / "cloud"
  bin_dir.mkdir()
  home.mkdir()
  for tool in ("gcloud", "xpk"):
    path = bin_dir / tool
    path.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                    f"import fake_cloud\nfake_cloud.main({tool!r})\n")  # fmt: skip
    path.chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
  monkeypatch.setenv("FAKE_CLOUD", str(home))
  monkeypatch.setattr(common, "require_gs_root", lambda root, backend: None)  # the test's queue is on local disk

  def scenario(lifetimes, config=None):
    state = {"config": config or {}, "lifetimes": lifetimes, "live": {}}
    (home / "state.json").write_text(json.dumps(state))
    (home / "calls.jsonl").write_text("")

  def calls():
    return [json.loads(line) for line in (home / "calls.jsonl").read_text().splitlines()]

  def live():
    return json.loads((home / "state.json").read_text())["live"]

  return scenario, calls, live


@pytest.fixture
def queue(tmp_path):
  specs = registry.expand_study(tiny_study("", "cloudy", registry.axis("train.seed", [1, 2, 3, 4])))
  sweep.enqueue(specs, tmp_path / "runs")
  return str(tmp_path / "runs")


@contextlib.contextmanager
def _deadline(seconds=60):
  """A launcher that stops reacting would loop forever: fail instead."""

  def expire(signum, frame):
    raise TimeoutError(f"the launcher was still looping after {seconds} s")

  signal.signal(signal.SIGALRM, expire)
  signal.alarm(seconds)
  try:
    yield
  finally:
    signal.alarm(0)


def _verbs(calls, tool="gcloud"):
  """(verb, name) of each call that changes something or starts a worker."""
  out = []
  for call in calls:
    if call[0] == tool == "gcloud" and call[1] == "compute" and call[4] in ("create", "delete", "ssh"):
      out.append((call[4], call[5]))
    if call[0] == tool == "xpk" and call[2] in ("create", "delete"):
      out.append((call[2], call[call.index("--workload") + 1]))
  return out


def test_tpu_vm_launch_recreates_a_preempted_slice_and_deletes_all_when_done(cloud, queue):
  scenario, calls, live = cloud
  waiting = ["WAITING_FOR_RESOURCES"] * 6 + ["PROVISIONING", "ACTIVE"]
  scenario({
    "s-0": [{"states": waiting, "ssh": [1]}],  # each worker session finishes one run
    "s-1": [{"states": ["ACTIVE"], "ssh": ["preempt"]},  # preempted holding a run …
            {"states": ["PROVISIONING", "ACTIVE"], "ssh": [1]}],  # … and created again while runs remain
  }, config={"project": "proj", "compute/zone": "zone-a"})  # fmt: skip
  options = tpu_vm.Options("v5p-16", slices=2, name="s", package="", poll=0.0)
  with _deadline():
    assert tpu_vm.run("cloudy", queue, options, echo=lambda line: None) == 0
  assert all(r.state == "done" for r in sweep.scan(queue, "cloudy"))
  verbs = _verbs(calls())
  assert verbs.count(("create", "s-0")) == 1 and verbs.count(("create", "s-1")) == 2
  preempted = verbs.index(("ssh", "s-1"))
  assert verbs[preempted + 1 :].index(("delete", "s-1")) < verbs[preempted + 1 :].index(("create", "s-1"))
  assert set(verbs[-2:]) == {("delete", "s-0"), ("delete", "s-1")} and live() == {}  # nothing left running
  describes = [c for c in calls() if c[1:6] == ["compute", "tpus", "queued-resources", "describe", "s-0"]]
  assert len(describes) >= len(waiting)  # a slice gets no worker before it is ACTIVE
  assert all(c[c.index("--project") + 1] == "proj" and c[c.index("--zone") + 1] == "zone-a" for c in calls()[2:])


def test_xpk_launch_recreates_finished_workloads_while_runs_remain(cloud, queue):
  scenario, calls, live = cloud
  scenario({
    "w-0": [{"statuses": ["QuotaReserved", "Admitted", "Admitted", "Finished"], "done": 2,
             "message": "jobset completed successfully"},
            {"statuses": ["Admitted", "Finished"], "done": 0, "message": "jobset completed successfully"}],
    "w-1": [{"statuses": ["Admitted", "Evicted", "Finished"], "done": 0, "message": "jobset failed: restarts exhausted"},
            {"statuses": ["Admitted", "Finished"], "done": 9, "message": "jobset completed successfully"}],
  })  # fmt: skip
  options = xpk.Options("tpus", "v5p-16", slices=2, project="proj", zone="zone-a", name="w", package="", poll=0.0)
  with _deadline():
    assert xpk.run("cloudy", queue, options, echo=lambda line: None) == 0
  assert all(r.state == "done" for r in sweep.scan(queue, "cloudy"))
  assert _verbs(calls(), "xpk") == [
    ("create", "w-0"), ("create", "w-1"),  # round 1: nothing exists yet
    ("delete", "w-1"),  # round 4: w-1 failed (evicted, out of restarts): removed …
    ("delete", "w-0"), ("create", "w-1"),  # round 5: w-0 finished two runs; w-1 is created again
    ("create", "w-0"),  # round 6: a run is still left, so w-0 comes back
    ("delete", "w-1"),  # round 7: w-1 finished the rest
    ("delete", "w-0"),  # the queue is empty: everything is deleted
  ]  # fmt: skip
  assert live() == {}


def test_errors_come_before_anything_is_created(cloud, queue, monkeypatch):
  scenario, calls, _ = cloud
  scenario({"s-0": [{"states": ["ACTIVE"], "ssh": [9]}]}, config={"project": "proj"})
  base = tpu_vm.Options("v5p-16", name="s", package="", poll=0.0)
  cases = [
    (base, "--zone: not given and gcloud has no compute/zone set"),
    (tpu_vm.Options("v5p-12", package=""), "accelerator type: 'v5p-12': no v5p slice of that size"),
    (tpu_vm.Options("tpu9-8", package=""), "accelerator type: unknown 'tpu9-8'"),
    (tpu_vm.Options("v5p-16"), "--package: the tpu-vm backend installs mixlaws"),
    (tpu_vm.Options("v5p-16", project="p", zone="z", package="", name="Bad_Name"), "--name: 'Bad_Name'"),
  ]
  for options, message in cases:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
      tpu_vm.run("cloudy", queue, options, echo=lambda line: None)
  with pytest.raises(ValueError, match="^--cluster: the xpk backend needs"):
    xpk.run("cloudy", queue, xpk.Options("", "v5p-16", package=""), echo=lambda line: None)
  monkeypatch.setenv("PATH", str(queue))  # a directory without gcloud or xpk (this machine may have a real one)
  with pytest.raises(ValueError, match="^gcloud: not found on PATH"):
    tpu_vm.run("cloudy", queue, base, echo=lambda line: None)
  with pytest.raises(ValueError, match="^xpk: not found on PATH"):
    xpk.run("cloudy", queue, xpk.Options("c", "v5p-16", project="p", zone="z", package=""), echo=lambda line: None)
  assert not [c for c in calls() if c[1] != "config"]  # only gcloud's settings were read
  monkeypatch.undo()
  with pytest.raises(ValueError, match="^--root: tpu-vm workers share the run root, so it must be gs://"):
    tpu_vm.plan("cloudy", queue, base, common.DEFAULT_WORKER)


def test_resource_names_are_valid_and_distinct():
  names = {common.resource_name(study, i) for study in ("a" * 80, "a" * 80 + "b", "Smoke_Test", "smoke-test")
           for i in (0, 11)}  # fmt: skip
  assert len(names) == 8
  assert all(len(n) <= 40 and n[0].isalpha() and set(n) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") for n in names)


def test_bootstrap_stops_a_previous_worker_and_parses(tmp_path):
  assert subprocess.run(["bash", "-n", "-c", common.bootstrap_script()], check=False).returncode == 0
  old = subprocess.Popen(["sleep", "60"])  # a worker left on the host by an earlier launch
  reaper = threading.Thread(target=old.wait)
  reaper.start()
  (tmp_path / "mixlaws-worker.pid").write_text(f"{old.pid}\n")
  env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
  done = subprocess.run(["bash", "-c", common.stop_command()], env=env, timeout=30, check=False)
  reaper.join()
  assert done.returncode == 0 and old.returncode == -signal.SIGINT  # asked to stop as Ctrl-C asks
