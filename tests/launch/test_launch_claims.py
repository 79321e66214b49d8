"""Atomic claims: however many threads and processes race for a run, exactly one wins each attempt."""

import concurrent.futures
import multiprocessing
import os
import signal
import threading

import pytest
from launch_helpers import claims, tiny_study

from mixlaws import registry, rundir, sweep


@pytest.fixture
def run(tmp_path):
  specs = registry.expand_study(tiny_study("", "race", [{}]))
  sweep.enqueue(specs, tmp_path)
  return rundir.RunDir(sweep.study_dir(tmp_path, "race") / specs[0].run_id)


def _race_threads(run, n=16):
  barrier = threading.Barrier(n)

  def contend(_):
    barrier.wait()
    return sweep.claim(run)

  with concurrent.futures.ThreadPoolExecutor(n) as pool:
    return [c for c in pool.map(contend, range(n)) if c is not None]


def test_threads_one_winner_per_attempt(run):
  for attempt in range(4):
    won = _race_threads(run)
    assert [c.attempt for c in won] == [attempt]
    assert run.read_status()["state"] == "running" and run.read_status()["attempt"] == attempt
    assert _race_threads(run) == []  # the winner is alive: nobody takes the run from it
    run.write_status("preempted", step=10 * attempt, attempt=attempt)  # its worker stops; the run is free again
  assert claims(run.path) == ["a0", "a1", "a2", "a3"]


def test_processes_one_winner_per_attempt(run):
  ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds JAX's threads
  with concurrent.futures.ProcessPoolExecutor(8, mp_context=ctx) as pool:
    list(pool.map(sweep.check_name, ["study"] * 8, ["warm"] * 8))  # start every process before the race
    for attempt in range(3):
      won = [c for c in pool.map(sweep.claim, [run] * 8) if c is not None]
      assert [c.attempt for c in won] == [attempt]
      run.write_status("preempted", attempt=attempt)
      # The bare exclusive create, raced at attempts nobody has taken yet.
      wins = list(pool.map(sweep.create_claim, [run] * 8, [100 + attempt] * 8))
      assert wins.count(True) == 1, wins
  assert claims(run.path) == ["a0", "a1", "a100", "a101", "a102", "a2"]


def test_a_dead_or_silent_claim_is_taken_over(run):
  first = sweep.claim(run)
  assert first.attempt == 0 and sweep.claim(run) is None
  record = sweep.read_claim(run, 0)
  assert sweep.claim_alive(record, run.read_status(), 300, record["heartbeat_at"] + 299)
  assert not sweep.claim_alive(record, run.read_status(), 300, record["heartbeat_at"] + 301)
  # A claim made by a process of this host that has exited is dead at once.
  gone = {**record, "pid": _exited_pid()}
  assert not sweep.claim_alive(gone, run.read_status(), 300, record["heartbeat_at"])
  second = sweep.claim(run, stale_after=0.0)  # silent for longer than stale_after: the run is taken over
  assert second.attempt == 1 and claims(run.path) == ["a0", "a1"]


def test_a_claim_left_before_the_run_started_is_skipped(run):
  assert sweep.create_claim(run, 0)  # a worker won attempt 0 and died before writing status.json
  assert sweep.claim(run) is None  # its claim is fresh: it may still be starting
  won = sweep.claim(run, stale_after=0.0)
  assert won.attempt == 1 and run.read_status()["attempt"] == 1


def test_done_and_failed_runs_are_left_alone(run):
  run.write_status("done", step=4)
  assert sweep.claim(run) is None
  run.write_status("failed", step=2, attempt=0, error="boom")
  assert sweep.claim(run) is None
  assert sweep.claim(run, retry_failed=True).attempt == 1


def _exited_pid():
  ctx = multiprocessing.get_context("spawn")
  proc = ctx.Process(target=sweep.check_name, args=("study", "exits"))
  proc.start()
  proc.join()
  return proc.pid


def test_a_worker_with_an_old_view_of_the_run_takes_nothing(run):
  seen = run.read_status()  # pending, as a slow worker read it …
  assert sweep.claim(run).attempt == 0  # … before another worker claimed the run
  run.write_status("done", step=4)  # and finished it

  class Slow(rundir.RunDir):
    views = [seen]

    def read_status(self):
      return self.views.pop() if self.views else super().read_status()

  # a0's heartbeat has gone quiet, so the slow worker goes on to a1 — and must give it back.
  assert sweep.claim(Slow(run.path), stale_after=0.0) is None
  assert claims(run.path) == ["a0"] and run.read_status()["state"] == "done"


def test_a_stop_signal_while_claiming_hands_the_run_back(run, monkeypatch):
  claim_next = sweep.claim_next

  def claim_then_get_stopped(*args, **kwargs):
    won = claim_next(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)  # a preemption notice arrives mid-claim
    return won

  monkeypatch.setattr(sweep, "claim_next", claim_then_get_stopped)
  previous = signal.getsignal(signal.SIGTERM)
  report = sweep.work(run.path.parent.parent, "race")
  assert (report.stopped_by, report.trained) == ("SIGTERM", [])
  status = run.read_status()
  assert (status["state"], status["attempt"]) == ("preempted", 0)  # the next worker takes attempt 1 at once
  assert signal.getsignal(signal.SIGTERM) is previous  # the worker's handlers are gone again
