"""The tpu-vm backend: TPU slices as queued resources with gcloud, a worker on every host of each.

The launcher keeps the slices busy until the queue is empty, looking every `poll` seconds:
  - a slice that does not exist is created (`queued-resources create`) while runs are left to take;
  - an ACTIVE slice gets `mixlaws worker` on all its hosts (`tpu-vm ssh --worker=all`) after the
    bootstrap installs mixlaws; when its worker exits and nothing is left to take, the idle slice
    is deleted (it is created again if a run frees up, e.g. another slice is preempted);
  - a SUSPENDED or FAILED slice (a spot slice preempted, a maintenance event) is deleted, and so
    created again next time round while runs remain; its run resumes from its checkpoint on
    whichever worker claims it once its heartbeat goes stale;
  - when no run is left to take or held by a live worker, every slice is deleted.
Ctrl-C asks every worker to stop (each checkpoints its run), then deletes the slices.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Callable

from mixlaws import accelerators

from . import common
from .common import DEFAULT_WORKER, WorkerOptions

WAITING = ("ACCEPTED", "PROVISIONING", "WAITING_FOR_RESOURCES", "CREATING", "DELETING")  # come back later
LOST = ("SUSPENDING", "SUSPENDED", "FAILED")  # preempted or broken: delete, and create again if needed
NAME_LENGTH = 50
STOP_GRACE = 600.0  # seconds the workers get to checkpoint after Ctrl-C before the slices are deleted


@dataclasses.dataclass(frozen=True)
class Options:
  """Where and what to run: `mixlaws run --backend tpu-vm` flags."""

  accelerator_type: str
  slices: int = 1
  project: str = ""  # "" → gcloud's configured project
  zone: str = ""  # "" → gcloud's configured compute/zone
  runtime_version: str = ""  # "" → the accelerator family's default
  provisioning: str = "standard"  # standard | spot | reserved
  name: str = ""  # slice name prefix; "" → mixlaws-<study>-<hash>
  package: str | None = None  # pip requirement that installs mixlaws[tpu,gcp] on the hosts; "" = already there
  pack_chips: bool = False  # one single-chip worker per chip (small runs) instead of one worker per host
  poll: float = 30.0
  max_failures: int = 3  # worker exits with an error in a row on one slice before the launcher gives up


class Gcloud:
  """The gcloud commands of one project and zone, as argument lists."""

  def __init__(self, project: str, zone: str):
    self.where = ["--project", project, "--zone", zone]

  def create(self, name: str, tpu: accelerators.TpuSlice, runtime: str, provisioning: str) -> list[str]:
    flag = {"standard": [], "spot": ["--spot"], "reserved": ["--reserved"]}[provisioning]
    return ["gcloud", "compute", "tpus", "queued-resources", "create", name, "--node-id", name, *self.where,
            "--accelerator-type", tpu.accelerator_type, "--runtime-version", runtime, *flag]  # fmt: skip

  def describe(self, name: str) -> list[str]:
    return ["gcloud", "compute", "tpus", "queued-resources", "describe", name, *self.where,
            "--format", "value(state.state)"]  # fmt: skip

  def delete(self, name: str) -> list[str]:
    return ["gcloud", "compute", "tpus", "queued-resources", "delete", name, *self.where, "--force", "--quiet"]

  def ssh(self, name: str, command: str) -> list[str]:
    return ["gcloud", "compute", "tpus", "tpu-vm", "ssh", name, *self.where, "--worker=all", "--command", command]


@dataclasses.dataclass(frozen=True)
class Plan:
  """Everything the launcher needs, checked before anything is created."""

  gcloud: Gcloud
  names: tuple[str, ...]
  tpu: accelerators.TpuSlice
  runtime: str
  provisioning: str
  worker_command: str  # the shell line run on every host

  def phases(self) -> dict[str, list[list[str]]]:
    """The commands of a launch in order, for --dry-run."""
    g = self.gcloud
    return {
      f"create {len(self.names)} {self.tpu.accelerator_type} slices ({self.tpu.hosts} hosts each)":
        [g.create(n, self.tpu, self.runtime, self.provisioning) for n in self.names],
      "poll each until ACTIVE (deleted and created again if preempted while runs remain)":
        [g.describe(n) for n in self.names],
      "bootstrap and start the worker on every host of each ACTIVE slice": [g.ssh(n, self.worker_command) for n in self.names],
      "delete the slices once the queue is empty": [g.delete(n) for n in self.names],
    }  # fmt: skip


def plan(study: str, root: str, options: Options, worker: WorkerOptions, *, dry_run: bool = False) -> Plan:
  """Checks the flags and the tools (one-line errors) and builds the commands; creates nothing."""
  if options.provisioning not in ("standard", "spot", "reserved"):
    raise ValueError(f"--provisioning: unknown {options.provisioning!r}; expected standard, spot or reserved")
  found = common.slices(study, root, options, worker, backend="tpu-vm", tool=("gcloud", "the Google Cloud CLI"),
                        name_length=NAME_LENGTH, dry_run=dry_run)  # fmt: skip
  runtime = options.runtime_version or found.tpu.family.runtime_version
  return Plan(Gcloud(found.project, found.zone), found.names, found.tpu, runtime, options.provisioning, found.command)


@dataclasses.dataclass
class _Slice:
  name: str
  exists: bool = False
  worker: subprocess.Popen | None = None
  failures: int = 0  # worker exits with an error in a row


class Launcher(common.QueueLauncher):
  """The loop of module docstring, one `step()` per poll."""

  def __init__(self, plan: Plan, study: str, root: str, worker: WorkerOptions, options: Options, echo):
    super().__init__(plan, study, root, worker, options, echo)
    self.slices = [_Slice(n) for n in plan.names]

  def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    return common.run_tool(argv, check=check)

  def state(self, name: str) -> str | None:
    """The queued resource's state; None when it does not exist."""
    argv = self.plan.gcloud.describe(name)
    out = self._run(argv, check=False)
    if out.returncode != 0:
      if "NOT_FOUND" in out.stderr or "not found" in out.stderr.lower():
        return None
      raise common.tool_error(argv, out)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else None

  def create(self, s: _Slice) -> None:
    self.echo(f"{s.name}: creating a {self.plan.tpu.accelerator_type} slice")
    self._run(self.plan.gcloud.create(s.name, self.plan.tpu, self.plan.runtime, self.plan.provisioning))
    s.exists, s.failures = True, 0

  def delete(self, s: _Slice, why: str) -> None:
    self.echo(f"{s.name}: deleting ({why})")
    self._stop_local_ssh(s)
    self._run(self.plan.gcloud.delete(s.name))
    s.exists = False

  def start_worker(self, s: _Slice) -> None:
    if s.failures >= self.options.max_failures:
      raise ValueError(f"{s.name}: the worker failed {s.failures} times in a row; see its output above")
    self.echo(f"{s.name}: starting workers on {self.plan.tpu.hosts} host(s)")
    # Its own session: a Ctrl-C meant for the launcher must not cut the ssh link under a training worker.
    s.worker = subprocess.Popen(self.plan.gcloud.ssh(s.name, self.plan.worker_command), start_new_session=True)

  def _stop_local_ssh(self, s: _Slice) -> None:
    if s.worker is not None and s.worker.poll() is None:
      s.worker.terminate()  # the ssh client only; the host is going away
      s.worker.wait()
    s.worker = None

  def _reap(self, s: _Slice) -> None:
    if s.worker is None or s.worker.poll() is None:
      return
    code = s.worker.returncode
    s.worker = None
    if code in (0, 75):
      s.failures = 0
    else:
      s.failures += 1
      self.echo(f"{s.name}: worker exited with status {code}")

  def step(self, takeable: int) -> None:
    for s in self.slices:
      self._reap(s)
      state = self.state(s.name)
      s.exists = state is not None
      if state is None:
        if takeable:
          self.create(s)
      elif state in LOST:
        self.delete(s, f"{state.lower()}; created again while runs remain")
      elif state == "ACTIVE" and s.worker is None:
        if takeable:
          self.start_worker(s)
        else:
          self.delete(s, "idle: every remaining run is held by another worker")

  def finish(self) -> None:
    for s in self.slices:
      self._reap(s)
      if self.state(s.name) is not None:
        self.delete(s, "the queue is empty")

  def interrupted(self) -> None:
    """Ctrl-C: ask the workers to checkpoint and stop, then delete the slices."""
    self.echo("stopping: each worker checkpoints its run, then the slices are deleted")
    for s in self.slices:
      if s.worker is not None and s.worker.poll() is None:
        self._run(self.plan.gcloud.ssh(s.name, common.stop_command()), check=False)
    deadline = time.time() + STOP_GRACE
    for s in self.slices:
      if s.worker is not None:
        try:
          s.worker.wait(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
          self.echo(f"{s.name}: the worker did not stop in {STOP_GRACE:.0f} s")
      if self.state(s.name) is not None:
        self.delete(s, "stopped")


def run(
  study: str,
  root: str,
  options: Options,
  worker: WorkerOptions = DEFAULT_WORKER,
  *,
  dry_run: bool = False,
  echo: Callable[[str], None] = print,
) -> int:
  """Runs the study's queue on TPU slices until it is empty; --dry-run prints the commands."""
  the_plan = plan(study, root, options, worker, dry_run=dry_run)
  return common.execute(Launcher, the_plan, study, root, options, worker, dry_run=dry_run, echo=echo)
