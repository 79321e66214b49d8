"""The xpk backend: one GKE workload per slice (`xpk workload create`), each running `mixlaws worker`.

GKE restarts a workload's pods when a slice is preempted (`--max-restarts`); the launcher only keeps
one workload per slice alive while runs are left, looking every `poll` seconds (`xpk workload list`):
  - a workload that does not exist is created while runs are left to take;
  - a Finished workload (its worker found nothing left, or it failed past its restarts) is deleted,
    and so created again next time round while runs remain;
  - when no run is left to take or held by a live worker, every workload is deleted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from mixlaws import accelerators

from . import common
from .common import DEFAULT_WORKER, WorkerOptions

NAME_LENGTH = 30  # xpk adds suffixes to the workload name for its JobSet and pods; GKE caps their length


@dataclasses.dataclass(frozen=True)
class Options:
  """`mixlaws run --backend xpk` flags."""

  cluster: str
  accelerator_type: str
  slices: int = 1
  project: str = ""  # "" → gcloud's configured project
  zone: str = ""  # "" → gcloud's configured compute/zone (the cluster's)
  docker_image: str = "python:3.11"  # the bootstrap installs mixlaws into it unless package is ""
  name: str = ""  # workload name prefix; "" → mixlaws-<study>-<hash>
  package: str | None = None  # pip requirement that installs mixlaws[tpu,gcp]; "" = the image has it
  pack_chips: bool = False
  max_restarts: int = 10  # GKE restarts of a workload (preemptions) before it counts as failed
  poll: float = 30.0
  max_failures: int = 3  # failed workloads in a row on one slice before the launcher gives up


class Xpk:
  """The xpk commands of one cluster, as argument lists."""

  def __init__(self, cluster: str, project: str, zone: str):
    self.where = ["--cluster", cluster, "--project", project, "--zone", zone]

  def create(self, name: str, tpu: accelerators.TpuSlice, image: str, max_restarts: int, command: str) -> list[str]:
    return ["xpk", "workload", "create", *self.where, "--workload", name, "--tpu-type", tpu.accelerator_type,
            "--num-slices", "1", "--docker-image", image, "--max-restarts", str(max_restarts),
            "--command", command]  # fmt: skip

  def list(self, prefix: str) -> list[str]:
    return ["xpk", "workload", "list", *self.where, "--filter-by-job", prefix]

  def delete(self, name: str) -> list[str]:
    return ["xpk", "workload", "delete", *self.where, "--workload", name]


@dataclasses.dataclass(frozen=True)
class Plan:
  xpk: Xpk
  names: tuple[str, ...]
  tpu: accelerators.TpuSlice
  image: str
  max_restarts: int
  worker_command: str

  @property
  def prefix(self) -> str:
    return self.names[0].rsplit("-", 1)[0]

  def create(self, name: str) -> list[str]:
    return self.xpk.create(name, self.tpu, self.image, self.max_restarts, self.worker_command)

  def phases(self) -> dict[str, list[list[str]]]:
    return {
      f"create {len(self.names)} workloads on {self.tpu.accelerator_type} slices": [self.create(n) for n in self.names],
      "poll them (created again when one finishes while runs remain)": [self.xpk.list(self.prefix)],
      "delete them once the queue is empty": [self.xpk.delete(n) for n in self.names],
    }


def plan(study: str, root: str, options: Options, worker: WorkerOptions, *, dry_run: bool = False) -> Plan:
  """Checks the flags and the tools (one-line errors) and builds the commands; creates nothing."""
  if not options.cluster:
    raise ValueError("--cluster: the xpk backend needs the GKE cluster's name")
  found = common.slices(study, root, options, worker, backend="xpk", tool=("xpk", "xpk (pip install xpk)"),
                        name_length=NAME_LENGTH, dry_run=dry_run)  # fmt: skip
  return Plan(Xpk(options.cluster, found.project, found.zone), found.names, found.tpu, options.docker_image,
              options.max_restarts, found.command)  # fmt: skip


def parse_list(text: str) -> dict[str, tuple[str, str]]:
  """`xpk workload list` → {workload: (status, status message)}.

  xpk prints a table whose columns line up under a header ("Jobset Name … Status  Status Message …");
  the values are cut at the header's column starts, as messages hold spaces.
  """
  lines = text.splitlines()
  header = next((i for i, line in enumerate(lines) if line.startswith("Jobset Name")), None)
  if header is None:
    return {}
  columns = [(m.group(), m.start()) for m in re.finditer(r"\S+(?: \S+)*", lines[header])]
  starts = [start for _, start in columns] + [None]
  out = {}
  for line in lines[header + 1 :]:
    if not line.strip():
      continue
    row = {name: line[starts[i] : starts[i + 1]].strip() for i, (name, _) in enumerate(columns)}
    out[row.get("Jobset Name", "")] = (row.get("Status", ""), row.get("Status Message", ""))
  return out


class Launcher(common.QueueLauncher):
  """The loop of the module docstring, one `step()` per poll."""

  def __init__(self, plan: Plan, study: str, root: str, worker: WorkerOptions, options: Options, echo):
    super().__init__(plan, study, root, worker, options, echo)
    self.failures = dict.fromkeys(plan.names, 0)

  def workloads(self) -> dict[str, tuple[str, str]]:
    listed = parse_list(common.run_tool(self.plan.xpk.list(self.plan.prefix)).stdout)
    return {name: listed[name] for name in self.plan.names if name in listed}

  def step(self, takeable: int) -> None:
    live = self.workloads()
    for name in self.plan.names:
      if name not in live:
        if takeable:
          if self.failures[name] >= self.options.max_failures:
            raise ValueError(f"{name}: failed {self.failures[name]} times in a row; see `kubectl logs` of its pods")
          self.echo(f"{name}: creating a workload on a {self.plan.tpu.accelerator_type} slice")
          common.run_tool(self.plan.create(name))
      elif live[name][0] == "Finished":
        failed = "fail" in live[name][1].lower()
        self.failures[name] = self.failures[name] + 1 if failed else 0
        self.echo(f"{name}: finished ({live[name][1] or 'no message'}); deleting it")
        common.run_tool(self.plan.xpk.delete(name))

  def interrupted(self) -> None:
    self.echo("stopped: the workloads keep training; rerun the same command to watch them again and clean up")

  def finish(self) -> None:
    for name in self.workloads():
      self.echo(f"{name}: deleting (the queue is empty)")
      common.run_tool(self.plan.xpk.delete(name))


def run(
  study: str,
  root: str,
  options: Options,
  worker: WorkerOptions = DEFAULT_WORKER,
  *,
  dry_run: bool = False,
  echo: Callable[[str], None] = print,
) -> int:
  """Runs the study's queue as GKE workloads until it is empty; --dry-run prints the commands."""
  the_plan = plan(study, root, options, worker, dry_run=dry_run)
  return common.execute(Launcher, the_plan, study, root, options, worker, dry_run=dry_run, echo=echo)
