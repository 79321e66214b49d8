"""Evaluating runs: tasks by name, results as `downstream` metric chunks, and a done marker per (run, task, step).

A result is written in two steps: the metric chunk, then the marker. A crash in between leaves a
chunk without a marker; the next evaluation writes a new chunk under a higher attempt, which the
collector prefers, so the store ends up with one value per key either way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence

from etils import epath

from mixlaws import budget, counting
from mixlaws import config as config_lib
from mixlaws.config import Config
from mixlaws.evaluation import embedded, engine, scores, tasks
from mixlaws.rundir import RunDir, chunk_name

SPLIT = "downstream"
# Downstream chunks take attempts from here up, above any training attempt, so their names
# (<step>-<step>-a<attempt>.jsonl) never replace a training chunk of the same step.
ATTEMPT_BASE = 1_000_000
MARKERS = "downstream"  # run-dir folder of the done markers


@dataclasses.dataclass(frozen=True)
class Options:
  """How tasks are evaluated; every field is part of a result's identity in its done marker."""

  shots: int = 0  # few-shot demonstrations per example
  samples: int = 8  # generative tasks: completions per problem (pass@k for k up to this)
  temperature: float = 0.8  # generative tasks: sampling temperature; 0 → greedy (Chen et al. 2021 use 0.2–0.8)
  limit: int = 0  # examples per task; 0 → all (embedded tasks: their default size)
  seed: int = 0  # example choice, few-shot demonstrations and sampling
  data_dir: str = ""  # where TFDS benchmarks were prepared; "" → the run's data.data_dir or the default
  batch_size: int = 0  # rows per batch over all devices; 0 → the run's train.batch_size

  def validate(self) -> None:
    for name in ("shots", "limit", "seed", "batch_size"):
      if getattr(self, name) < 0:
        raise ValueError(f"--{name.replace('_', '-')}: must be non-negative, got {getattr(self, name)}")
    if self.samples < 1:
      raise ValueError(f"--samples: must be at least 1, got {self.samples}")
    if not self.temperature >= 0:
      raise ValueError(f"--temperature: must be non-negative, got {self.temperature}")


@dataclasses.dataclass(frozen=True)
class Result:
  """One (run, task, step): its metrics, or why nothing was done."""

  run_dir: str
  task: str
  step: int
  metrics: dict[str, float]
  skipped: str = ""  # "" → evaluated now; else the reason (already done)


def task_names(text: str) -> list[str]:
  """Task specs from --tasks: comma-separated embedded names, TFDS benchmark names or .jsonl paths."""
  names = [t.strip() for t in text.split(",") if t.strip()]
  if not names:
    raise ValueError("--tasks: name at least one task")
  for name in names:
    if name not in embedded.TASKS and name not in tasks.TFDS_TASKS and not name.endswith(".jsonl"):
      known = ", ".join((*embedded.TASKS, *tasks.TFDS_TASKS))
      raise ValueError(f"--tasks: unknown task {name!r}; expected one of {known} or a .jsonl file")
  return names


def _base_name(spec: str) -> str:
  return tasks.jsonl_name(spec) if spec.endswith(".jsonl") else spec


def data_dir(cfg: Config, options: Options) -> str:
  from mixlaws.data import datasets

  return options.data_dir or datasets.data_dir(cfg.data)


def identity(spec: str, cfg: Config, options: Options) -> dict:
  """What makes a result the same result: the marker must match it exactly to skip the work."""
  out = {"task": spec, "shots": options.shots, "limit": options.limit, "seed": options.seed}
  if spec in embedded.TASKS:
    out["corpus"] = dataclasses.asdict(embedded.corpus(cfg.data))
  if spec == "close_brackets":
    out.update(samples=options.samples, temperature=options.temperature)
  if spec.endswith(".jsonl"):
    out["sha256"] = tasks.jsonl_digest(spec)
  if spec in tasks.TFDS_TASKS:
    out["dataset"] = tasks.TFDS_TASKS[spec].dataset
  return out


def build_task(spec: str, cfg: Config, options: Options) -> tasks.Task:
  if spec in embedded.TASKS:
    task = embedded.build(spec, cfg.data, options.limit, options.seed)
  elif spec.endswith(".jsonl"):
    task = tasks.from_jsonl(spec, options.limit)
  else:
    task = tasks.from_tfds(spec, data_dir(cfg, options), options.limit, options.shots)
  return tasks.with_shots(task, options.shots, options.seed)


def score(model: engine.Model, task: tasks.Task, options: Options) -> dict[str, float]:
  """The task's metrics under `model`: accuracies and bits-per-byte, or pass@k."""
  tok = model.tokenizer
  if task.generative:
    prompts = [tok.encode(p.prompt) for p in task.examples]
    draws = model.sample(prompts, options.samples, task.max_new_tokens, options.temperature, options.seed,
                         options.batch_size)  # fmt: skip
    passed = [[task.check(p, _completion(tok, d)) for d in ds] for p, ds in zip(task.examples, draws)]
    out = scores.generative(passed)
  else:
    rows = [(tok.encode(ctx), tok.encode(cont)) for ex in task.examples for ctx, cont in zip(ex.contexts, ex.continuations)]  # fmt: skip
    loglik, n_tokens = model.loglik(rows, options.batch_size)
    ll, nt, nb, k = [], [], [], 0
    for ex in task.examples:
      m = len(ex.continuations)
      ll.append(loglik[k : k + m])
      nt.append(n_tokens[k : k + m])
      nb.append([len(c.encode("utf-8")) for c in ex.continuations])
      k += m
    out = scores.multiple_choice(ll, nt, nb, [ex.answer for ex in task.examples])
  out["examples"] = float(len(task.examples))
  return out


def _completion(tok, ids: list[int]) -> str:
  """The sampled text up to EOS, where a document (and so any completion) ends."""
  return tok.decode(ids[: ids.index(tok.eos_id)] if tok.eos_id in ids else ids)


# --------------------------------------------------------------------------------------------
# Markers and records


def marker_path(run: RunDir, task: str, step: int) -> epath.Path:
  return run.path / MARKERS / f"{task}-{step:09d}.json"


def is_done(run: RunDir, task: str, step: int, ident: dict) -> bool:
  path = marker_path(run, task, step)
  if not path.exists():
    return False
  try:
    return json.loads(path.read_text()).get("identity") == ident
  except json.JSONDecodeError:
    return False


def write_result(run: RunDir, cfg: Config, task: str, step: int, metrics: dict[str, float], ident: dict) -> None:
  """The metric chunk, then the done marker (see the module docstring for why in this order)."""
  tokens = budget.tokens_after(cfg, step)
  flops = counting.run_counts(cfg).conventions[cfg.output.flops_convention].flops_per_token * tokens
  record = {"step": step, "tokens": tokens, "flops": flops, "split": SPLIT}
  record.update({f"{task}/{k}": v for k, v in metrics.items() if math.isfinite(v)})
  attempt = ATTEMPT_BASE
  while (run.metrics_dir / chunk_name(step, step, attempt)).exists():
    attempt += 1
  chunk = run.write_metrics([record], attempt)
  marker = marker_path(run, task, step)
  marker.parent.mkdir(parents=True, exist_ok=True)
  body = {"task": task, "step": step, "identity": ident, "metrics": metrics, "chunk": chunk.name}
  tmp = marker.parent / f".{marker.name}.{os.getpid()}.tmp"
  tmp.write_text(json.dumps(body, indent=2) + "\n")
  tmp.replace(marker)  # atomic on a local disk; an earlier marker with another identity is replaced


# --------------------------------------------------------------------------------------------
# Runs and studies


def evaluate_run(
  run_dir: str | os.PathLike,
  specs: Sequence[str],
  options: Options = Options(),
  *,
  step: int | None = None,
  force: bool = False,
  devices=None,
  built: dict | None = None,
  on_result: Callable[[Result], None] = lambda result: None,
) -> list[Result]:
  """Scores checkpoint `step` (None → latest) of one run on each task not already done; returns the results.

  `built` caches tasks across the runs of a study (tasks depend on the task options and the corpus only).
  """
  options.validate()
  run = RunDir(run_dir)
  cfg = config_lib.resolve(run.read_config()["config"])
  steps = engine.checkpoint_steps(run)
  if not steps:
    raise ValueError(f"{os.fspath(run_dir)}: has no checkpoint to evaluate")
  step = steps[-1] if step is None else step
  if step not in steps:
    raise ValueError(
      f"--step: {step} is not a checkpoint of {os.fspath(run_dir)} (it has {', '.join(map(str, steps))})"
    )
  built = {} if built is None else built
  model, results = None, []
  for spec in specs:
    name = tasks.shot_name(_base_name(spec), options.shots)
    ident = identity(spec, cfg, options)
    if not force and is_done(run, name, step, ident):
      done = json.loads(marker_path(run, name, step).read_text())["metrics"]
      results.append(Result(os.fspath(run_dir), name, step, done, skipped="already done"))
      on_result(results[-1])
      continue
    key = json.dumps(ident, sort_keys=True) + data_dir(cfg, options)
    if key not in built:
      built[key] = build_task(spec, cfg, options)
    if model is None:
      model = engine.load(run, cfg, step, devices)
    metrics = score(model, built[key], options)
    write_result(run, cfg, name, step, metrics, ident)
    results.append(Result(os.fspath(run_dir), name, step, metrics))
    on_result(results[-1])
  return results


def study_runs(root: str | os.PathLike, study: str) -> list[epath.Path]:
  """Run dirs (with a config.json) of a study, by name."""
  study_dir = epath.Path(root) / study
  if not study_dir.is_dir():
    raise ValueError(f"{os.fspath(study_dir)}: no such study directory under the run root")
  return sorted((p for p in study_dir.iterdir() if (p / "config.json").exists()), key=lambda p: p.name)


def evaluate_study(
  root: str | os.PathLike,
  study: str,
  specs: Sequence[str],
  options: Options = Options(),
  *,
  step: int | None = None,
  force: bool = False,
  on_result: Callable[[Result], None] = lambda result: None,
  on_error: Callable[[str, str], None] = lambda run_dir, error: None,
) -> tuple[list[Result], dict[str, str], list[str]]:
  """Evaluates every run of a study that has a checkpoint; resumable, since done (run, task, step)s are skipped.

  Returns the results, the one-line reason for each run dir that failed, and the run dirs without
  a checkpoint yet (not an error: a sweep in progress has them).
  """
  built: dict = {}
  results, errors, waiting = [], {}, []
  for path in study_runs(root, study):
    if not engine.checkpoint_steps(RunDir(path)):
      waiting.append(os.fspath(path))
      continue
    try:
      results += evaluate_run(path, specs, options, step=step, force=force, built=built, on_result=on_result)
    except ValueError as e:
      errors[os.fspath(path)] = str(e)
      on_error(os.fspath(path), str(e))
  return results, errors, waiting
