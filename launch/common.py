"""What every backend shares: command lines built as lists, worker arguments, resource names, tool checks.

No string from a config, a study or a run name ever reaches a shell unquoted: commands are argument
lists, run without a shell; where a shell must run one (a remote `--command`), it is `shlex.join`ed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from mixlaws import accelerators, sweep

TPU_PROCESS_BASE_PORT = 8476  # libtpu's default port; one port per packed single-chip worker


@dataclasses.dataclass(frozen=True)
class Command:
  """One process to start: its arguments and the environment variables it needs beyond ours."""

  argv: tuple[str, ...]
  env: tuple[tuple[str, str], ...] = ()

  def shell(self) -> str:
    """The command as one copy-pasteable, fully quoted line."""
    prefix = ["env", *(f"{k}={v}" for k, v in self.env)] if self.env else []
    return shlex.join([*prefix, *self.argv])

  def environ(self) -> dict[str, str]:
    return {**os.environ, **dict(self.env)}


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
  """What every worker of a sweep is told besides the study and the root."""

  retry_failed: bool = False
  stale_after: float = sweep.STALE_AFTER

  def args(self) -> list[str]:
    return [*(["--retry-failed"] if self.retry_failed else []), "--stale-after", f"{self.stale_after:g}"]


DEFAULT_WORKER = WorkerOptions()


def worker_args(study: str, root: str, options: WorkerOptions, extra: Sequence[str] = ()) -> list[str]:
  """`mixlaws` arguments of a worker; "--" ends the options, so a study named like an option is still a name."""
  return ["worker", "--root", root, "--quiet", *options.args(), *extra, "--", study]


def local_argv(mixlaws_args: Sequence[str]) -> tuple[str, ...]:
  """A `mixlaws` command run by this machine's Python (the same environment as the launcher)."""
  return (sys.executable, "-m", "mixlaws", *mixlaws_args)


# ------------------------------------------------------------------------------------------------
# Remote workers


def bootstrap_script() -> str:
  return importlib.resources.files("mixlaws.launch").joinpath("bootstrap.sh").read_text()


def bootstrap_command(package: str, mixlaws_args: Sequence[str]) -> str:
  """A shell line for a remote host: install `package`, then run `mixlaws mixlaws_args…` (all quoted)."""
  return shlex.join(["bash", "-c", bootstrap_script(), "bootstrap", package, *mixlaws_args])


def stop_command() -> str:
  """A shell line that asks a host's worker to stop (SIGINT: it checkpoints its run and exits)."""
  return shlex.join(["bash", "-c", bootstrap_script(), "bootstrap", "--stop"])


def chip_env(chip: int) -> dict[str, str]:
  """Environment of a worker that owns one chip of a TPU host, so several small runs share a host.

  Each process sees one chip as a whole 1x1x1 slice on its own port; the hostnames list holds only
  this host, so the worker does not try to join the others through jax.distributed.
  """
  port = TPU_PROCESS_BASE_PORT + chip
  return {
    "TPU_VISIBLE_CHIPS": str(chip),
    "TPU_PROCESS_BOUNDS": "1,1,1",
    "TPU_CHIPS_PER_PROCESS_BOUNDS": "1,1,1",
    "TPU_PROCESS_PORT": str(port),
    "TPU_PROCESS_ADDRESSES": f"localhost:{port}",
    "CLOUD_TPU_TASK_ID": "0",
    "TPU_WORKER_ID": "0",
    "TPU_WORKER_HOSTNAMES": "localhost",
  }


def packed_commands(mixlaws_args: Sequence[str], chips: int) -> list[Command]:
  """One single-chip worker per chip of this host (`mixlaws worker --pack-chips N`)."""
  return [Command(local_argv(mixlaws_args), tuple(chip_env(i).items())) for i in range(chips)]


# ------------------------------------------------------------------------------------------------
# Names and tools

_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def resource_name(study: str, index: int, prefix: str = "", max_len: int = 40) -> str:
  """A cloud resource name for slice `index`: `prefix-index`, or mixlaws-<study slug>-<hash>-<index>.

  Clouds allow lowercase letters, digits and hyphens; the hash keeps two studies whose slugs
  collide (or are cut short) apart.
  """
  suffix = f"-{index}"
  if prefix:
    name = prefix + suffix
    if not _NAME.match(name) or len(name) > max_len:
      raise ValueError(
        f"--name: {prefix!r}: lowercase letters, digits and hyphens, starting with a letter, "
        f"at most {max_len - len(suffix)} characters"
      )
    return name
  digest = hashlib.sha256(study.encode()).hexdigest()[:6]
  slug = re.sub(r"[^a-z0-9]+", "-", study.lower()).strip("-")
  room = max_len - len("mixlaws--") - len(digest) - 1 - len(suffix)
  slug = slug[:room].strip("-")
  return "-".join(filter(None, ["mixlaws", slug, digest])) + suffix


def require_tool(name: str, what: str) -> str:
  path = shutil.which(name)
  if path is None:
    raise ValueError(f"{name}: not found on PATH; install {what}")
  return path


def require_gs_root(root: str, backend: str) -> None:
  if not root.startswith("gs://"):
    raise ValueError(f"--root: {backend} workers share the run root, so it must be gs://…, not {root!r}")


def require_package(package: str | None, backend: str) -> str:
  if package is None:
    raise ValueError(
      f"--package: the {backend} backend installs mixlaws on every worker; give a pip requirement such as "
      "'mixlaws[tpu,gcp] @ git+https://…' or '' when the image already has it"
    )
  return package


def gcloud_default(prop: str) -> str:
  """A `gcloud config` property (project, compute/zone), "" when unset."""
  out = subprocess.run(["gcloud", "config", "get-value", prop], capture_output=True, text=True, check=False)
  value = out.stdout.strip().splitlines()[-1].strip() if out.stdout.strip() else ""
  return "" if value == "(unset)" else value


def project_and_zone(project: str, zone: str) -> tuple[str, str]:
  """--project and --zone, else gcloud's configured ones; a one-line error when either stays unset."""
  if (not project or not zone) and shutil.which("gcloud"):
    project = project or gcloud_default("project")
    zone = zone or gcloud_default("compute/zone")
  if not project:
    raise ValueError("--project: not given and gcloud has no project set (gcloud config set project …)")
  if not zone:
    raise ValueError("--zone: not given and gcloud has no compute/zone set (gcloud config set compute/zone …)")
  return project, zone


def run_tool(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess:
  """Runs a cloud CLI command (no shell); a failure becomes a one-line error naming the command."""
  out = subprocess.run(list(argv), capture_output=True, text=True, check=False)
  if check and out.returncode != 0:
    raise tool_error(argv, out)
  return out


def tool_error(argv: Sequence[str], out: subprocess.CompletedProcess) -> ValueError:
  lines = (out.stderr or out.stdout or "").strip().splitlines()
  return ValueError(f"{shlex.join(argv[:5])} …: exit {out.returncode}: {lines[-1] if lines else 'no output'}")


def comment(text: str) -> str:
  """A dry run's comment line: one line whatever the text holds (a newline in --root would end the
  comment and leave the rest to run as a command), with control characters escaped as in Python."""
  return "# " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def print_plan(phases: Mapping[str, Sequence[Sequence[str]]], echo) -> None:
  """--dry-run: each phase as a comment line, then its commands, quoted."""
  for title, commands in phases.items():
    echo(comment(title))
    for argv in commands:
      echo(shlex.join(argv))


@dataclasses.dataclass(frozen=True)
class Slices:
  """What both cloud backends work out the same way: the slice type, where, the worker command, names."""

  tpu: accelerators.TpuSlice
  project: str
  zone: str
  command: str  # the bootstrap command every host runs
  names: tuple[str, ...]  # one slice or workload per entry


def slices(study: str, root: str, options, worker: WorkerOptions, *, backend: str, tool: tuple[str, str],
           name_length: int, dry_run: bool) -> Slices:  # fmt: skip
  """Checks the flags both backends share (one-line errors) and the backend's `tool` (name, description,
  skipped in a dry run), and builds the worker command and the names of `options.slices` slices."""
  if options.slices < 1:
    raise ValueError(f"--slices: must be at least 1, got {options.slices}")
  tpu = accelerators.tpu_slice(options.accelerator_type)
  package = require_package(options.package, backend)
  require_gs_root(root, backend)
  sweep.check_name("study", study)
  if not dry_run:
    require_tool(*tool)
  project, zone = project_and_zone(options.project, options.zone)
  if options.pack_chips:
    extra = ["--pack-chips", str(tpu.chips_per_host)]
  else:
    extra = ["--tpu-pod"] if tpu.hosts > 1 else []
  command = bootstrap_command(package, worker_args(study, root, worker, extra))
  names = tuple(resource_name(study, i, options.name, name_length) for i in range(options.slices))
  return Slices(tpu, project, zone, command, names)


class QueueLauncher:
  """What the cloud launchers share: watch the study's queue every `options.poll` seconds and call
  `step(takeable)` until no run is left to take or held, then `finish()`. Subclasses define both."""

  def __init__(self, plan, study: str, root: str, worker: WorkerOptions, options, echo: Callable[[str], None]):
    self.plan, self.study, self.root, self.worker, self.options, self.echo = plan, study, root, worker, options, echo

  def step(self, takeable: int) -> None:
    raise NotImplementedError

  def finish(self) -> None:
    raise NotImplementedError

  def interrupted(self) -> None:
    """What Ctrl-C does before the launcher exits 75."""
    raise NotImplementedError

  def loop(self) -> int:
    """0 when the queue is done, 1 when a run in it failed, 75 when stopped by Ctrl-C."""
    try:
      return self._watch()
    except KeyboardInterrupt:
      self.interrupted()
      return 75

  def _watch(self) -> int:
    while True:
      rows = sweep.scan(self.root, self.study, stale_after=self.worker.stale_after)
      takeable, held = sweep.remaining(rows, self.worker.retry_failed)
      if takeable + held == 0:
        self.finish()
        return 1 if any(r.state == "failed" for r in rows) else 0
      self.step(takeable)
      time.sleep(self.options.poll)


def execute(launcher: type[QueueLauncher], the_plan, study: str, root: str, options, worker: WorkerOptions, *,
            dry_run: bool = False, echo: Callable[[str], None] = print) -> int:  # fmt: skip
  """Carries out a backend's checked plan (the caller may enqueue the runs in between); a dry run prints it."""
  if dry_run:
    print_plan(the_plan.phases(), echo)
    return 0
  return launcher(the_plan, study, root, worker, options, echo).loop()
