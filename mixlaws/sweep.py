"""A sweep is a queue of run dirs: enqueueing, atomic claims, the worker loop and status summaries.

    <root>/<study>/<run_id>/claims/a<N>    the claim of attempt N: created once, by the worker that wins it

A worker takes a run that is pending, preempted, or running with a stale heartbeat (and a failed one
when asked to retry) by creating the claim file of the run's next attempt exclusively — O_EXCL on a
local disk, a generation-match precondition (`if_generation_match=0`) on gs:// — so however many
workers race, exactly one wins each attempt. It then trains the run with that attempt number and
takes the next. The winner refreshes its claim every HEARTBEAT_SECONDS while it trains; a claim
whose heartbeat (or the run's status.json heartbeat) is older than `stale_after`, or whose process
is gone from this host, is dead, and the run is claimed again at the next attempt, resuming from its
checkpoint. A multi-process worker (a TPU pod slice, or local processes through jax.distributed)
claims on process 0 and broadcasts the choice, so every process trains the same run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from etils import epath

from mixlaws.rundir import STATES, RunDir, UnreadableFile

if TYPE_CHECKING:
  from mixlaws.config import DistributedConfig
  from mixlaws.registry import RunSpec

HEARTBEAT_SECONDS = 30.0  # a worker refreshes its claim this often, as the trainer refreshes status.json
STALE_AFTER = 300.0  # default: a claim silent this long belongs to a dead worker (ten missed heartbeats)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
MAX_RUN_ID_BYTES = 1024  # run ids broadcast between the processes of a multi-process worker
FORK_POLL_SECONDS = 2.0  # an idle worker looks this often for a branch whose trunk has saved its fork
IO_THREADS = 32  # reads of a gs:// queue are network round trips; overlapping them keeps a scan of hundreds short


def _map(fn: Callable, items: Sequence) -> list:
  """`fn` over `items` on threads (I/O-bound reads), in order."""
  if len(items) < 2:
    return [fn(item) for item in items]
  with concurrent.futures.ThreadPoolExecutor(min(IO_THREADS, len(items))) as pool:
    return list(pool.map(fn, items))


# ------------------------------------------------------------------------------------------------
# The queue: run dirs of one study


def check_name(kind: str, name: str) -> str:
  """A study or run name must be one path component: it names a directory under the run root."""
  if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0"):
    raise ValueError(f"{kind}: {name!r} cannot name a directory (one path component, not starting with '.')")
  return name


def study_dir(root: str | os.PathLike, study: str) -> epath.Path:
  """<root>/<study>, for a local or gs:// root (claims need one of the two)."""
  root_path = epath.Path(root)
  scheme = os.fspath(root_path).partition("://")[0] if "://" in os.fspath(root_path) else ""
  if scheme not in ("", "gs"):
    raise ValueError(f"--root: {os.fspath(root_path)!r}: claims need a local path or gs://, not {scheme}://")
  return root_path / check_name("study", study)


def enqueue(
  specs: Iterable[RunSpec], root: str | os.PathLike, on_error: Callable[[str], None] = lambda message: None
) -> dict[str, int]:
  """Writes each run's config.json (once) and a pending status.json unless it has one; counts new runs.

  A status is never overwritten: a relaunch leaves done, running and failed runs as they are. Workers
  only claim runs that have a status, so checking and then writing cannot race with a worker. A run
  whose config.json or status.json does not parse is left alone and passed to `on_error`.
  """

  specs = list(specs)
  check_meshes(specs)

  def add(spec: RunSpec) -> bool | str:
    run = RunDir(study_dir(root, spec.study) / check_name("run_id", spec.run_id))
    try:
      run.write_config(spec.record())
      if run.read_status() is not None:
        return False
    except UnreadableFile as e:
      return str(e)
    run.write_status("pending")
    return True

  added = _map(add, specs)
  for error in (a for a in added if isinstance(a, str)):
    on_error(f"{error}; run left as it is")
  return {"new": sum(a is True for a in added), "existing": sum(a is False for a in added)}


def check_meshes(specs: Sequence[RunSpec]) -> None:
  """A mesh axis that cannot split the model (mesh.expert=4 for 3 experts) fails here, naming the run and
  the field, before any run dir is written, instead of failing every run in a worker. The axis left at
  -1 depends on the worker's devices and is checked when the run starts."""
  from mixlaws import config as config_lib
  from mixlaws import train

  seen = set()
  for spec in specs:
    cfg = spec.config
    sizes = tuple(max(getattr(cfg.mesh, a), 1) for a in config_lib.MESH_AXES)
    if max(sizes) > 1 and (cfg.model, cfg.moe, cfg.mesh) not in seen:
      seen.add((cfg.model, cfg.moe, cfg.mesh))
      try:
        train.check_mesh_fits(cfg, sizes)
      except ValueError as e:
        raise ValueError(f"{spec.run_id}: {e}") from None


def run_dirs(root: str | os.PathLike, study: str) -> list[RunDir]:
  """The study's run dirs that hold a config.json, sorted by run id (hidden entries skipped)."""
  path = study_dir(root, study)
  if not path.exists():
    return []
  dirs = sorted((p for p in path.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
  has_config = _map(lambda p: (p / "config.json").exists(), dirs)
  return [RunDir(p) for p, keep in zip(dirs, has_config) if keep]


# ------------------------------------------------------------------------------------------------
# Claims


def claim_path(run: RunDir, attempt: int) -> epath.Path:
  return run.path / "claims" / f"a{attempt}"


def _owner(attempt: int) -> dict[str, Any]:
  now = time.time()
  return {"attempt": attempt, "host": socket.gethostname(), "pid": os.getpid(), "claimed_at": now, "heartbeat_at": now}


def _gcs_blob(path: epath.Path):
  from google.cloud import storage  # the `gcp` extra

  bucket, _, name = os.fspath(path).removeprefix("gs://").partition("/")
  return storage.Client().bucket(bucket).blob(name)


def create_exclusive(path: epath.Path, text: str) -> bool:
  """Creates `path` holding `text` unless it exists; True for the one caller that created it."""
  if os.fspath(path).startswith("gs://"):
    from google.api_core import exceptions

    try:
      _gcs_blob(path).upload_from_string(text, if_generation_match=0)  # only when no object exists
    except exceptions.PreconditionFailed:
      return False
    return True
  path.parent.mkdir(parents=True, exist_ok=True)
  try:
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
  except FileExistsError:
    return False
  with os.fdopen(fd, "w") as f:
    f.write(text)
  return True


def create_claim(run: RunDir, attempt: int) -> bool:
  """Claims attempt `attempt` of `run`; exactly one caller wins each attempt."""
  return create_exclusive(claim_path(run, attempt), json.dumps(_owner(attempt)))


def read_claim(run: RunDir, attempt: int) -> dict[str, Any] | None:
  """The claim record; None when there is none, {} while its winner is still writing it."""
  path = claim_path(run, attempt)
  try:
    text = path.read_text()
  except FileNotFoundError:
    return None
  try:
    return json.loads(text)
  except json.JSONDecodeError:
    return {}


def _pid_gone(record: dict[str, Any]) -> bool:
  """True when the claim's process was on this host and has exited (a quick answer; heartbeats still rule)."""
  if record.get("host") != socket.gethostname() or "pid" not in record:
    return False
  try:
    os.kill(int(record["pid"]), 0)
  except ProcessLookupError:
    return True
  except PermissionError:  # alive, under another user
    return False
  return False


def claim_alive(record: dict[str, Any] | None, status: dict[str, Any] | None, stale_after: float, now: float) -> bool:
  """Whether the worker holding a claim is alive: its process (when on this host) and a fresh heartbeat.

  The heartbeat is the newer of the claim's own and the run's status.json of the same attempt.
  """
  if record == {}:
    return True  # created a moment ago, still being written
  beats = []
  if record is not None:
    if _pid_gone(record):
      return False
    beats.append(record.get("heartbeat_at", 0.0))
  if status is not None and (record is None or status.get("attempt") == record.get("attempt")):
    beats.append(status.get("updated_at", 0.0))
  return bool(beats) and now - max(beats) < stale_after


def is_stale(run: RunDir, status: dict[str, Any], stale_after: float, now: float | None = None) -> bool:
  """A `running` status whose worker is dead (no heartbeat for `stale_after` seconds, or its process gone)."""
  if status["state"] != "running":
    return False
  now = time.time() if now is None else now
  return not claim_alive(read_claim(run, status["attempt"]), status, stale_after, now)


def wants_worker(run: RunDir, status: dict[str, Any] | None, retry_failed: bool, stale_after: float) -> bool:
  """Whether a worker should take the run now: pending, preempted, stale, or failed with `retry_failed`."""
  if status is None:
    return False
  state = status["state"]
  return (
    state in ("pending", "preempted")
    or (state == "failed" and retry_failed)
    or (state == "running" and is_stale(run, status, stale_after))
  )


@dataclasses.dataclass(frozen=True)
class Claim:
  """A won attempt of a run."""

  run: RunDir
  attempt: int

  @property
  def run_id(self) -> str:
    return self.run.path.name

  def refresh(self) -> None:
    """Renews the claim's heartbeat (the record is rewritten whole: GCS objects cannot be edited)."""
    path = claim_path(self.run, self.attempt)
    record = read_claim(self.run, self.attempt) or _owner(self.attempt)
    record["heartbeat_at"] = time.time()
    text = json.dumps(record)
    if os.fspath(path).startswith("gs://"):
      _gcs_blob(path).upload_from_string(text)
      return
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(os.fspath(tmp), os.fspath(path))

  def release(self) -> None:
    claim_path(self.run, self.attempt).unlink(missing_ok=True)


def claim(run: RunDir, *, retry_failed: bool = False, stale_after: float = STALE_AFTER) -> Claim | None:
  """Claims the run's next attempt if a worker should take it; None when it needs none or another won.

  The attempt follows the status: 0 for a pending run, else the status's attempt + 1. A claim of that
  attempt left by a worker that died before starting the run is skipped for the next one.
  """
  seen = run.read_status()
  if not wants_worker(run, seen, retry_failed, stale_after) or not fork_ready(run):
    return None
  attempt = 0 if seen["state"] == "pending" else seen["attempt"] + 1
  while not create_claim(run, attempt):
    record = read_claim(run, attempt)
    if record is None:
      continue  # released between our create and read: try the same attempt again
    if claim_alive(record, seen, stale_after, time.time()):
      return None
    attempt += 1
  # A worker that read an older status may win an attempt after the run moved on; the status tells.
  if run.read_status() != seen:
    Claim(run, attempt).release()
    return None
  run.write_status("running", step=seen["step"], attempt=attempt)
  return Claim(run, attempt)


def claim_next(
  root: str | os.PathLike,
  study: str,
  *,
  retry_failed: bool = False,
  stale_after: float = STALE_AFTER,
  on_error: Callable[[str], None] = lambda message: None,
) -> Claim | None:
  """The first run of the study this worker wins, in run-id order; None when none is left to take.

  A run whose status.json does not parse is passed to `on_error` and skipped.
  """
  runs = run_dirs(root, study)
  for run, status in zip(runs, _map(_status_or_error, runs)):  # a first look skips finished runs at once
    if isinstance(status, str):
      on_error(f"{status}; run skipped")
      continue
    if status is None or status["state"] == "done" or (status["state"] == "failed" and not retry_failed):
      continue
    try:
      run.read_config()  # a run whose config.json is unreadable cannot train: skip it, do not fail it
      won = claim(run, retry_failed=retry_failed, stale_after=stale_after)
    except UnreadableFile as e:
      on_error(f"{e}; run skipped")
      continue
    if won is not None:
      return won
  return None


def _status_or_error(run: RunDir) -> dict[str, Any] | str | None:
  try:
    return run.read_status()
  except UnreadableFile as e:
    return str(e)


def claim_for_train(run: RunDir, stale_after: float = STALE_AFTER) -> Claim:
  """The claim `mixlaws train RUN_DIR` takes, as a worker would, whatever the run's state.

  Raises a ValueError naming the holder when a live worker (or another `train`) holds the run.
  """
  while True:
    seen = run.read_status()
    if seen is not None and seen["state"] == "running" and not is_stale(run, seen, stale_after):
      raise ValueError(_held_by(run, seen))
    attempt = 0 if seen is None or (seen["state"] == "pending" and seen["attempt"] == 0) else seen["attempt"] + 1
    while not create_claim(run, attempt):
      record = read_claim(run, attempt)
      if record is not None and claim_alive(record, seen, stale_after, time.time()):
        raise ValueError(_held_by(run, {**(seen or {}), "attempt": attempt}))
      attempt += record is not None  # a dead claim: the next attempt; a released one: the same again
    if run.read_status() == seen:
      break
    Claim(run, attempt).release()  # the run moved on while we claimed: look again
  if seen is not None:
    run.write_status("running", step=seen["step"], attempt=attempt)
  return Claim(run, attempt)


def _held_by(run: RunDir, status: dict[str, Any]) -> str:
  record = read_claim(run, status["attempt"]) or {}
  holder = f"host {record.get('host', status.get('host', '?'))}, pid {record.get('pid', '?')}"
  return (
    f"{run.path}: held by attempt {status['attempt']} ({holder}, at step {status.get('step', 0)}); "
    "wait for it, or stop that process first"
  )


@contextlib.contextmanager
def holding(won: Claim):
  """Keeps a claim's heartbeat fresh while the body trains its run."""
  beat = _Heartbeat(won)
  try:
    yield won
  finally:
    beat.stop()


def _lineage(run: RunDir) -> dict[str, Any] | None:
  try:
    return run.read_config().get("lineage")
  except (OSError, ValueError):
    return None


def fork_ready(run: RunDir) -> bool:
  """False for a WSD branch that has not started and whose trunk has not yet saved its fork checkpoint.

  A branch that saved a checkpoint of its own resumes from it and needs the fork no more.
  """
  lineage = _lineage(run)
  if lineage is None or lineage.get("role") != "branch":
    return True
  if run.checkpoints_dir.exists() and any(p.name.isdigit() for p in run.checkpoints_dir.iterdir()):
    return True
  from mixlaws import train

  return train.fork_exists(RunDir(run.path.parent / lineage["trunk"]), int(lineage["fork_steps"][0]))


def waiting_for_forks(root: str | os.PathLike, study: str) -> list[str]:
  """Branches a worker could take once their trunk, still pending or running, saves their fork."""
  runs = run_dirs(root, study)
  states = {run.path.name: status for run, status in zip(runs, _map(_status_or_error, runs))}
  states = {name: status if isinstance(status, dict) else None for name, status in states.items()}  # unreadable: skip
  waiting = []
  for run in runs:
    status, lineage = states[run.path.name], _lineage(run)
    if not status or status["state"] != "pending" or not lineage or lineage.get("role") != "branch":
      continue
    trunk = states.get(lineage["trunk"])
    if trunk and trunk["state"] in ("pending", "running", "preempted") and not fork_ready(run):
      waiting.append(run.path.name)
  return waiting


class _Heartbeat:
  """Refreshes a claim from a background thread while its run trains (the trainer may compile for minutes)."""

  def __init__(self, won: Claim, every: float = HEARTBEAT_SECONDS):
    self._claim, self._every, self._done = won, every, threading.Event()
    self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{won.run_id}", daemon=True)
    self._thread.start()

  def _beat(self) -> None:
    while not self._done.wait(self._every):
      try:
        self._claim.refresh()
      except OSError:  # a storage hiccup: the next beat tries again, and stale_after allows ten misses
        pass

  def stop(self) -> None:
    self._done.set()
    self._thread.join()


# ------------------------------------------------------------------------------------------------
# The worker loop


class _Signals:
  """Records SIGINT/SIGTERM through the interpreter's wakeup fd.

  The trainer installs its own handlers for the run it trains; the wakeup fd still sees every
  signal, including one that arrives after the trainer's loop stopped looking (final evaluation,
  last checkpoint), so the worker never takes another run after being told to stop.
  """

  def __init__(self):
    self._read, self._write = os.pipe()
    os.set_blocking(self._read, False)
    os.set_blocking(self._write, False)
    self.received: list[str] = []
    self._previous_fd, self._previous = None, {}
    if threading.current_thread() is not threading.main_thread():
      return  # only the main thread may handle signals (a worker run from a test's thread)
    self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
    self._previous = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}

  def poll(self) -> str:
    """The name of the first stop signal received so far, or ""."""
    try:
      data = os.read(self._read, 512)
    except BlockingIOError:
      data = b""
    self.received += [signal.Signals(b).name for b in data if b in {int(s) for s in STOP_SIGNALS}]
    return self.received[0] if self.received else ""

  def close(self) -> None:
    if self._previous_fd is not None:
      signal.set_wakeup_fd(self._previous_fd)
    for sig, handler in self._previous.items():
      signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: a handler set outside Python
    os.close(self._read)
    os.close(self._write)


@dataclasses.dataclass
class WorkerReport:
  """What one worker did: each run it trained with the attempt and the state it ended in."""

  trained: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)
  stopped_by: str = ""  # the signal that stopped the worker, or "" when the queue ran dry


def _agree(stop: str, won: Claim | None, lead: bool) -> tuple[bool, str | None, int]:
  """Every process of a multi-process worker leaves together, or trains process 0's claim."""
  import numpy as np
  from jax.experimental import multihost_utils

  if np.any(multihost_utils.process_allgather(np.array(int(bool(stop)), np.int32))):
    if lead and won is not None:
      won.run.write_status("preempted", step=won.run.read_status()["step"], attempt=won.attempt)
    return True, None, -1
  payload = np.zeros(2 + MAX_RUN_ID_BYTES, np.int32)
  if lead and won is not None:
    name = won.run_id.encode()
    if len(name) > MAX_RUN_ID_BYTES:
      raise ValueError(f"run_id: {won.run_id[:40]}…: longer than {MAX_RUN_ID_BYTES} bytes")
    payload[0], payload[1] = won.attempt, len(name)
    payload[2 : 2 + len(name)] = np.frombuffer(name, np.uint8)
  payload = np.asarray(multihost_utils.broadcast_one_to_all(payload))
  if payload[1] == 0:
    return False, None, -1
  return False, bytes(payload[2 : 2 + payload[1]].astype(np.uint8)).decode(), int(payload[0])


def _train(run: RunDir, attempt: int, distributed: DistributedConfig | None, progress: bool, lead: bool) -> str:
  """Trains one claimed run; a crash of this run marks it failed and the worker goes on."""
  import jax

  from mixlaws import config as config_lib
  from mixlaws import train

  try:
    cfg = config_lib.resolve(run.read_config()["config"])
    if distributed is not None:
      cfg = dataclasses.replace(cfg, distributed=distributed)  # deployment, not part of the run's identity
    return train.train(cfg, os.fspath(run.path), attempt=attempt, progress=progress)
  except Exception as e:  # one bad run (bad mesh for these devices, out of memory) must not stop the sweep
    status = run.read_status() if lead else None
    if lead and not (status and status["attempt"] == attempt and status["state"] in ("failed", "done")):
      run.write_status("failed", step=status["step"] if status else 0, attempt=attempt,
                       error=f"{type(e).__name__}: {e}".splitlines()[0])  # fmt: skip
    return "failed"
  finally:
    jax.clear_caches()  # a worker trains many runs; executables of finished runs would pile up


def work(
  root: str | os.PathLike,
  study: str,
  *,
  retry_failed: bool = False,
  stale_after: float = STALE_AFTER,
  progress: bool = False,
  distributed: DistributedConfig | None = None,
  tpu_pod: bool = False,
  log: Callable[[str], None] = lambda line: None,
  wait_for_forks: bool = True,
) -> WorkerReport:
  """Claims and trains runs of `root/study` until none is left to take or a stop signal arrives.

  `distributed` joins a multi-process worker (local processes through jax.distributed); `tpu_pod`
  joins the hosts of a TPU slice with jax.distributed's auto-detection. Process 0 claims for all.
  With `wait_for_forks`, a single-process worker with nothing to take stays while some branch waits
  for the fork its trunk (pending or trained by another worker) has yet to save, and takes it then.
  """
  import jax

  from mixlaws import multihost

  signals = _Signals()
  try:
    if distributed is not None:
      multihost.initialize(distributed)
    elif tpu_pod and not jax.distributed.is_initialized():
      jax.distributed.initialize()
    lead, multi = jax.process_index() == 0, jax.process_count() > 1
    report = WorkerReport()
    warned: set[str] = set()

    def warn(message: str) -> None:  # once per unreadable run, not once per claim
      if message not in warned:
        warned.add(message)
        log(f"warning: {message}")

    while True:
      won = None if not lead or signals.poll() else claim_next(root, study, retry_failed=retry_failed,
                                                               stale_after=stale_after, on_error=warn)  # fmt: skip
      stop = signals.poll()  # also a signal that came while claiming
      if multi:
        leave, run_id, attempt = _agree(stop, won, lead)
        stop = stop or ("stop signal on another process" if leave else "")
      else:
        if stop and won is not None:  # the signal came while claiming: hand the run straight back
          won.run.write_status("preempted", step=won.run.read_status()["step"], attempt=won.attempt)
        run_id, attempt = (won.run_id, won.attempt) if won and not stop else (None, -1)
      if not stop and run_id is None and lead and not multi and wait_for_forks and waiting_for_forks(root, study):
        time.sleep(FORK_POLL_SECONDS)  # branches wait on a trunk another worker trains: poll, don't leave
        continue
      if stop or run_id is None:
        report.stopped_by = stop
        return report
      run = RunDir(study_dir(root, study) / run_id)
      log(f"{run_id}: attempt {attempt}")
      beat = _Heartbeat(Claim(run, attempt)) if lead else None
      try:
        state = _train(run, attempt, distributed, progress, lead)
      finally:
        if beat:
          beat.stop()
      log(f"{run_id}: {state}")
      report.trained.append((run_id, attempt, state))
      if state == "preempted":
        report.stopped_by = signals.poll() or "preempted"
        return report
  finally:
    signals.close()


# ------------------------------------------------------------------------------------------------
# Status


@dataclasses.dataclass(frozen=True)
class RunState:
  """One row of `mixlaws status`."""

  run_id: str
  state: str  # pending | running | done | failed | preempted | stale (running, worker dead) | unreadable
  step: int
  total_steps: int
  attempt: int
  heartbeat_age: float  # seconds since the newer of status.json's and the claim's heartbeat
  host: str
  error: str | None


def scan(root: str | os.PathLike, study: str, *, stale_after: float = STALE_AFTER) -> list[RunState]:
  """Every run of the study with its state (a running run with a dead worker reads `stale`)."""
  now = time.time()

  def row(run: RunDir) -> RunState | None:
    try:
      status = run.read_status()
      if status is None:
        return None
      total = run.read_config().get("counts", {}).get("steps", 0)
    except UnreadableFile as e:  # shown as its own state; the rest of the study is still reported
      return RunState(run.path.name, "unreadable", 0, 0, -1, 0.0, "", str(e))
    record = read_claim(run, status["attempt"]) or {}
    beat = max(status.get("updated_at", 0.0), record.get("heartbeat_at", 0.0))
    state = "stale" if is_stale(run, status, stale_after, now) else status["state"]
    return RunState(run.path.name, state, status["step"], total, status["attempt"], now - beat,
                    status.get("host", ""), status.get("error"))  # fmt: skip

  return [r for r in _map(row, run_dirs(root, study)) if r is not None]


def counts(rows: Sequence[RunState]) -> dict[str, int]:
  """Runs per state, every state listed (stale and unreadable included)."""
  found = Counter(r.state for r in rows)
  return {state: found.get(state, 0) for state in (*STATES, "stale", "unreadable")}


def remaining(rows: Sequence[RunState], retry_failed: bool = False) -> tuple[int, int]:
  """(runs a new worker could take now, runs held by live workers)."""
  takeable = {"pending", "preempted", "stale"} | ({"failed"} if retry_failed else set())
  return sum(r.state in takeable for r in rows), sum(r.state == "running" for r in rows)
