"""Stand-ins for `gcloud` and `xpk`: they record their arguments and play the cloud's side of a scenario.

The tests put executables named gcloud and xpk on PATH that call `main(tool)`. The scenario lives in
$FAKE_CLOUD/state.json: per resource name, a list of lifetimes, one used per create — the states a
describe/list walks through, and what the workers do (finish runs, get preempted). A worker "finishes"
a run by marking it done in the run dir named by the command it was given, so the launcher sees the
queue drain as it would on a real slice.
"""

import fcntl
import json
import os
import shlex
import sys
from pathlib import Path

HEADERS = ["Jobset Name", "Created Time", "Priority", "TPU VMs Needed", "TPU VMs Running/Ran", "TPU VMs Done",
           "Status", "Status Message", "Status Time"]  # fmt: skip


def _queue(command):
  """(study dir, run dirs) named by a worker command line (`… worker --root R … -- STUDY`)."""
  args = shlex.split(command)
  rest = args[args.index("worker") :]
  study_dir = Path(rest[rest.index("--root") + 1]) / rest[rest.index("--") + 1]
  return sorted(p for p in study_dir.iterdir() if (p / "status.json").exists())


def _finish(command, count):
  for run in [r for r in _queue(command) if json.loads((r / "status.json").read_text())["state"] != "done"][:count]:
    (run / "status.json").write_text(json.dumps({"state": "done", "step": 4, "attempt": 0, "updated_at": 0.0,
                                                 "host": "fake", "error": None}))  # fmt: skip


def _die_holding_a_run(command):
  """A preempted host: its worker had claimed a run and never beats again (heartbeat long stale)."""
  for run in _queue(command):
    if json.loads((run / "status.json").read_text())["state"] == "pending":
      (run / "status.json").write_text(json.dumps({"state": "running", "step": 2, "attempt": 0, "updated_at": 0.0,
                                                   "host": "gone", "error": None}))  # fmt: skip
      return


def _gcloud(args, state):
  if args[:2] == ["config", "get-value"]:
    print(state["config"].get(args[2], "(unset)"))
    return 0
  verb, name = args[3], args[4]
  live = state["live"]
  if args[:4] == ["compute", "tpus", "queued-resources", "create"]:
    if name in live:
      print(f"ERROR: ALREADY_EXISTS: {name}", file=sys.stderr)
      return 1
    if not state["lifetimes"].get(name):
      print(f"ERROR: RESOURCE_EXHAUSTED: no capacity for {name}", file=sys.stderr)
      return 1
    live[name] = {**state["lifetimes"][name].pop(0), "seen": 0}
    return 0
  if name not in live:
    print(f"ERROR: (gcloud.compute.tpus.{verb}) NOT_FOUND: {name} was not found", file=sys.stderr)
    return 1 if verb != "ssh" else 255
  slice_ = live[name]
  if verb == "describe":
    print(slice_["states"][min(slice_["seen"], len(slice_["states"]) - 1)])
    slice_["seen"] += 1
  elif verb == "delete":
    del live[name]
  elif verb == "ssh":
    command = args[args.index("--command") + 1]
    if "--stop" in shlex.split(command):
      return 0
    action = slice_["ssh"].pop(0) if len(slice_["ssh"]) > 1 else slice_["ssh"][0]
    if action == "preempt":
      _die_holding_a_run(command)
      slice_["states"], slice_["seen"] = ["SUSPENDED"], 0
      return 255  # the ssh link drops with the host
    _finish(command, action)
  return 0


def _xpk(args, state):
  live = state["live"]
  name = args[args.index("--workload") + 1] if "--workload" in args else None
  if args[:2] == ["workload", "create"]:
    if name in live or not state["lifetimes"].get(name):
      print(f"error: cannot create {name}", file=sys.stderr)
      return 1
    live[name] = {**state["lifetimes"][name].pop(0), "seen": 0, "command": args[args.index("--command") + 1]}
  elif args[:2] == ["workload", "delete"]:
    live.pop(name)
  elif args[:2] == ["workload", "list"]:
    prefix = args[args.index("--filter-by-job") + 1]
    rows = []
    for wl_name, wl in sorted(live.items()):
      status = wl["statuses"][min(wl["seen"], len(wl["statuses"]) - 1)]
      wl["seen"] += 1
      if status == "Finished" and not wl.get("finished"):
        wl["finished"] = True
        _finish(wl["command"], wl["done"])
      message = wl["message"] if status == "Finished" else "Admitted by ClusterQueue"
      if prefix in wl_name:
        rows.append([wl_name, "2026-01-01T00:00:00Z", "medium", "2", "2", "0", status, message, "2026-01-01T00:01:00Z"])
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(HEADERS)]
    for row in [HEADERS, *rows]:
      print("   ".join(v.ljust(w) for v, w in zip(row, widths)))
  return 0


def main(tool):
  home = Path(os.environ["FAKE_CLOUD"])
  with open(home / "lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # ssh calls run beside describe calls
    with open(home / "calls.jsonl", "a") as log:
      log.write(json.dumps([tool, *sys.argv[1:]]) + "\n")
    state = json.loads((home / "state.json").read_text())
    code = (_gcloud if tool == "gcloud" else _xpk)(sys.argv[1:], state)
    (home / "state.json").write_text(json.dumps(state))
  sys.exit(code)
