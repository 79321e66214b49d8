"""One run: sharded init, the jitted train step, evaluation, checkpoints, metrics and status.

The train state is a plain dict of NNX states, `{"params", "model_state", "opt_state", "step"}`.
Parameters and optimizer moments are NNX Variables, so the logical axis names a parameter was
created with travel into its AdamW moments and one rule table shards both.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mixlaws import accelerators, budget, counting, models, multihost, optim, sharding
from mixlaws import config as config_lib
from mixlaws import data as data_lib
from mixlaws.config import Config
from mixlaws.metrics import MetricWriter
from mixlaws.rundir import RunDir

AUX_LOSSES = ("load_balance_loss", "z_loss")


def _is_variable(x: Any) -> bool:
  return isinstance(x, nnx.Variable)


# ------------------------------------------------------------------------------------------------
# State and step


def _new_model(cfg: Config) -> nnx.Module:
  with nnx.use_eager_sharding(False):  # we place parameters ourselves, from the rule table
    return models.Transformer(cfg.model, cfg.moe, rngs=nnx.Rngs(cfg.train.seed),
                              vocab_multiple=sharding.vocab_multiple(cfg.mesh))  # fmt: skip


def init_fn(cfg: Config, tx: optax.GradientTransformation):
  """A function that builds the whole train state (traced under jit, so nothing materialises twice)."""

  def init() -> dict[str, Any]:
    _, params, model_state = nnx.split(_new_model(cfg), nnx.Param, ...)
    return {"params": params, "model_state": model_state, "opt_state": tx.init(params),
            "step": jnp.zeros((), jnp.int32)}  # fmt: skip

  return init


def graphdef(cfg: Config) -> nnx.GraphDef:
  return nnx.split(nnx.eval_shape(lambda: _new_model(cfg)), nnx.Param, ...)[0]


def state_shardings(abstract_state: Any, mesh: Mesh, rules: sharding.Rules) -> Any:
  """NamedShardings for the train state: Variables by their logical axes, everything else replicated."""

  def place(x):
    spec = sharding.logical_to_spec(sharding.logical_axes(x), rules) if _is_variable(x) else PartitionSpec()
    return NamedSharding(mesh, spec)

  return jax.tree.map(place, abstract_state, is_leaf=_is_variable)


def abstract_with_shardings(abstract_state: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs carrying their shardings, in the train state's own tree structure."""

  def attach(x, s):
    sds = jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)
    return x.replace(sds) if _is_variable(x) else sds

  return jax.tree.map(attach, abstract_state, shardings, is_leaf=_is_variable)


def token_losses(logits_btv: jax.Array, batch_bt: jax.Array, pad_id: int) -> tuple[jax.Array, jax.Array]:
  """(summed float32 cross-entropy, number of counted targets); padding targets carry no loss."""
  targets_bt = batch_bt[:, 1:]
  mask_bt = (targets_bt != pad_id).astype(jnp.float32)
  ce_bt = optax.softmax_cross_entropy_with_integer_labels(logits_btv.astype(jnp.float32), targets_bt)
  return (ce_bt * mask_bt).sum(), mask_bt.sum()


def make_train_step(
  cfg: Config, gdef: nnx.GraphDef, tx: optax.GradientTransformation, mesh: Mesh, pad_id: int | None = None
):
  """The pure train step: (state, batch_bt) → (state, metrics). Dense and MoE take the same path.

  pad_id: the padding token; None → the tokenizer's (a pre-flight passes one, needing no tokenizer file).
  """
  weights = {"load_balance_loss": cfg.moe.load_balance_weight, "z_loss": cfg.moe.z_loss_weight}
  pad_id = data_lib.tokenizer(cfg.data).pad_id if pad_id is None else pad_id

  def loss_fn(params, model_state, batch_bt):
    model = nnx.merge(gdef, params, model_state)
    logits_btv, aux = model(batch_bt[:, :-1], train=True)
    loss_sum, count = token_losses(logits_btv, batch_bt, pad_id)
    ce = loss_sum / jnp.maximum(count, 1.0)
    aux_loss = sum(weights[k] * aux[k] for k in AUX_LOSSES)
    return ce + aux_loss, (ce, aux_loss, aux)

  def step(state, batch_bt, lr):
    with sharding.activation_sharding(mesh, cfg.mesh.activation_rules, cfg.mesh.param_rules):
      grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
      (_, (ce, aux_loss, aux)), grads = grad_fn(state["params"], state["model_state"], batch_bt)
    direction, opt_state = tx.update(grads, state["opt_state"], state["params"])
    updates = jax.tree.map(lambda u: -lr * u, direction)  # AdamW's last stage (see optim.optimizer)
    metrics = {"loss": ce, "aux_loss": aux_loss, "grad_norm": optax.tree.norm(grads), "lr": lr,
               **{k: v for k, v in aux.items() if jnp.ndim(v) == 0}}  # fmt: skip
    new_state = {**state, "params": optax.apply_updates(state["params"], updates), "opt_state": opt_state,
                 "step": state["step"] + 1}  # fmt: skip
    return new_state, metrics

  return step


def make_eval_step(cfg: Config, gdef: nnx.GraphDef, mesh: Mesh):
  """(params, model_state, batch_bt) → (summed token cross-entropy, target count), dropless."""

  pad_id = data_lib.tokenizer(cfg.data).pad_id

  def step(params, model_state, batch_bt):
    with sharding.activation_sharding(mesh, cfg.mesh.activation_rules, cfg.mesh.param_rules):
      logits_btv, _ = nnx.merge(gdef, params, model_state)(batch_bt[:, :-1], train=False)
    return token_losses(logits_btv, batch_bt, pad_id)

  return step


# ------------------------------------------------------------------------------------------------
# Pieces of the loop


class TrainingFailed(Exception):
  """Loss or gradient norm became NaN/Inf."""


@dataclasses.dataclass
class _Stop:
  """Set by SIGTERM (preemption) or SIGINT; the loop checkpoints and exits at the next step."""

  requested: str = ""

  def install(self) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        signal.signal(sig, lambda signum, _: setattr(self, "requested", signal.Signals(signum).name))
      except ValueError:  # not the main thread (e.g. a test harness); preemption is then not handled
        pass


def _checkpoint_manager(run: RunDir, cfg: Config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=cfg.checkpoint.keep, enable_async_checkpointing=False,
                                         create=True)  # fmt: skip
  return ocp.CheckpointManager(run.orbax_directory(), options=options)


def batch_sharding(cfg: Config, mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, sharding.logical_to_spec(("batch", None), cfg.mesh.activation_rules))


def check_batch_sizes(cfg: Config, batch_sharding: NamedSharding) -> None:
  """Every batch size of the run must split evenly over the batch-sharded devices and processes."""
  spec = batch_sharding.spec[0]
  axes = spec if isinstance(spec, tuple) else (spec,) if spec else ()
  shards = math.prod(batch_sharding.mesh.shape[a] for a in axes) if axes else 1
  for seg in budget.segments(cfg.train, cfg.model.seq_len):
    for ways, what in ((shards, "batch-sharded devices"), (jax.process_count(), "processes")):
      if seg.batch_size % ways:
        raise ValueError(f"train.batch_size: {seg.batch_size} sequences do not split over {ways} {what}")


# The config field that sets each logical axis's length, for errors about a mesh axis that does not divide it.
_AXIS_FIELDS = {"embed": "model.d_model", "mlp": "model.d_ff / moe.granularity", "heads": "model.n_heads",
                "vocab": "model.vocab_size", "expert": "moe.expansion_rate × moe.granularity",
                "layers": "model.n_layers", "kv": "model.d_model / model.n_heads",
                "head_dim": "model.d_model / model.n_heads"}  # fmt: skip


def check_mesh_fits(cfg: Config, mesh_sizes: Sequence[int]) -> None:
  """Every parameter dimension must split evenly over the mesh axes its rule names: a ValueError naming
  the mesh field and the model field, instead of JAX's IndivisibleError from inside the first step."""
  sizes = dict(zip(config_lib.MESH_AXES, mesh_sizes))
  abstract = nnx.state(nnx.eval_shape(lambda: _new_model(cfg)), nnx.Param)
  for path, var in jax.tree_util.tree_leaves_with_path(abstract, is_leaf=_is_variable):
    spec = sharding.logical_to_spec(sharding.logical_axes(var), cfg.mesh.param_rules)
    for length, name, axes in zip(var.shape, sharding.logical_axes(var), spec):
      axes = axes if isinstance(axes, tuple) else (axes,) if axes else ()
      ways = math.prod(sizes[a] for a in axes)
      if length % ways:
        where = "/".join(str(getattr(k, "key", k)) for k in path)
        field = " × ".join(f"mesh.{a}={sizes[a]}" for a in axes)
        raise ValueError(f"mesh.{axes[-1]}: {field} does not divide {length}, the {name} dimension of {where} "
                         f"(set by {_AXIS_FIELDS.get(name, name)})")  # fmt: skip


@functools.cache
def _cpu_peak_flops() -> float:
  from mixlaws import bench

  return bench.matmul_peak_flops(n=1024, repeats=5)


def peak_flops() -> float:
  """Peak FLOP/s of all devices of the run, for MFU (CPU: a matmul measured in this process)."""
  acc = accelerators.for_device_kind(jax.devices()[0].device_kind)
  if acc is None:
    return _cpu_peak_flops() * (1 if jax.default_backend() == "cpu" else jax.device_count())
  return acc.peak_flops * jax.device_count()


def parameter_table(abstract_params: Any, rules: sharding.Rules) -> list[list[str]]:
  """Rows of `name | shape | dtype | spec` for the startup log."""
  rows = []
  for path, var in jax.tree_util.tree_leaves_with_path(abstract_params, is_leaf=_is_variable):
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    spec = sharding.logical_to_spec(sharding.logical_axes(var), rules)
    rows.append([name, str(tuple(var.shape)), str(var.dtype), str(spec)])
  return rows


def _enable_compilation_cache(run: RunDir) -> None:
  """JAX's persistent compilation cache in the run root, so identical shapes compile once per sweep."""
  if jax.config.jax_compilation_cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", os.fspath(run.path.parent.parent / ".jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# ------------------------------------------------------------------------------------------------
# The run


class Run:
  """Everything one `train` call holds; its methods are the steps of the loop."""

  def __init__(self, cfg: Config, run_dir: str, attempt: int | None, progress: bool, devices: Sequence | None):
    self.cfg = cfg
    self.run = RunDir(run_dir)
    self.is_writer = jax.process_index() == 0
    previous = self.run.read_status()
    self.attempt = attempt if attempt is not None else (previous["attempt"] + 1 if previous else 0)
    check_mesh_fits(cfg, config_lib.mesh_shape(cfg.mesh, len(devices or jax.devices())))
    self.mesh = sharding.make_mesh(cfg.mesh, devices)
    self.batch_sharding = batch_sharding(cfg, self.mesh)
    check_batch_sizes(cfg, self.batch_sharding)
    self.total_steps = budget.total_steps(cfg)
    self.flops_per_token = counting.run_counts(cfg).conventions[cfg.output.flops_convention].flops_per_token
    self.metrics = MetricWriter(self.run, self.attempt, enabled=self.is_writer, tensorboard=cfg.output.tensorboard,
                                wandb=cfg.output.wandb)  # fmt: skip
    self.progress = progress and self.is_writer
    self.stop = _Stop()
    self.last_heartbeat = 0.0
    self.started_at = time.perf_counter()
    self.step = 0  # the newest step reached (restored or settled): what status.json reports on failure
    self.timings: dict[str, float] = {}  # startup_s, first_step_s: see RunDir.write_status
    self.fork_steps = trunk_fork_steps(self.run)  # a WSD trunk saves a fork checkpoint at each

  def status(self, state: str, step: int, error: str | None = None, force: bool = True) -> None:
    now = time.time()
    if self.is_writer and (force or now - self.last_heartbeat > 30):
      self.run.write_status(state, step=step, attempt=self.attempt, error=error, timings=self.timings)
      self.last_heartbeat = now

  def global_batch(self, local_bt: np.ndarray, batch_size: int) -> jax.Array:
    shape = (batch_size, local_bt.shape[1])
    return jax.make_array_from_process_local_data(self.batch_sharding, local_bt, shape)

  def record(self, step: int, metrics: dict, step_time: float, batch_size: int) -> dict:
    """Turns step `step`'s fetched metrics into a record; raises TrainingFailed on NaN/Inf."""
    values = {k: float(v) for k, v in metrics.items()}
    for name in ("loss", "grad_norm"):
      if not math.isfinite(values[name]):
        self.step = max(self.step, step - 1)  # a failed run's status keeps the last finite step
        raise TrainingFailed(f"step {step}: {name} is {values[name]}")
    self.step = max(self.step, step)
    tokens = budget.tokens_after(self.cfg, step)
    step_tokens = batch_size * self.cfg.model.seq_len
    record = {"step": step, "tokens": tokens, "flops": self.flops_per_token * tokens, "split": "train", **values,
              "step_time": step_time,
              "mfu": self.flops_per_token * step_tokens / max(step_time, 1e-9) / peak_flops()}  # fmt: skip
    if step % self.cfg.output.log_every == 0 or step == self.total_steps:
      self.metrics.add(record)
    return record


def init_state(cfg: Config, mesh: Mesh, tx: optax.GradientTransformation) -> tuple[Any, Any, Any]:
  """(state, shardings, abstract state): parameters and optimizer state born sharded inside jit."""
  init = init_fn(cfg, tx)
  abstract = jax.eval_shape(init)
  shardings = state_shardings(abstract, mesh, cfg.mesh.param_rules)
  return jax.jit(init, out_shardings=shardings)(), shardings, abstract


def _restore_or_init(run: Run, manager, tx, iterator):
  """Resume order: newest checkpoint that restores → train state (with its shardings) and iterator
  state; else init. A checkpoint that does not restore (truncated by a crash, a full disk) is named in
  a warning and moved to corrupt_checkpoints/, and the next older one is tried."""
  latest = manager.latest_step()
  if latest is None and branch_lineage(run.run) is not None:
    return _restore_fork(run, tx, iterator)  # a branch's first attempt starts from its trunk's fork
  if latest is None:
    return init_state(run.cfg, run.mesh, tx)
  abstract = jax.eval_shape(init_fn(run.cfg, tx))
  shardings = state_shardings(abstract, run.mesh, run.cfg.mesh.param_rules)
  target = abstract_with_shardings(abstract, shardings)
  failures = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                               data=ocp.args.JsonRestore()))  # fmt: skip
      iterator.restore(restored["data"])
    except Exception as e:  # orbax and tensorstore raise many types for a damaged checkpoint
      failures.append(f"{_damaged_file(run.run, step)}: {type(e).__name__}: {e}".splitlines()[0])
      continue
    if failures:
      _set_aside(run, manager, [s for s in manager.all_steps() if s > step], failures, f"step {step}")
    return restored["state"], shardings, abstract
  raise ValueError(f"{run.run.checkpoints_dir}: no checkpoint restores ({'; '.join(failures)})")


_ORBAX_JSON = ("_CHECKPOINT_METADATA", "_METADATA", "_sharding", "metadata")  # JSON files orbax writes in a step


def _damaged_file(run: RunDir, step: int) -> str:
  """The first file of a checkpoint that is not valid JSON where JSON is expected, else its directory."""
  step_dir = run.checkpoints_dir / str(step)
  items = sorted(step_dir.iterdir()) if step_dir.is_dir() else []
  files = [p for p in items if p.is_file()] + [q for p in items if p.is_dir() for q in sorted(p.iterdir())]
  for path in files:  # orbax's JSON files: the step's metadata, and each item's (state/, data/) metadata
    if path.is_file() and (path.suffix == ".json" or path.name in _ORBAX_JSON):
      try:
        json.loads(path.read_bytes())
      except ValueError:
        return os.fspath(path)
  return os.fspath(step_dir)


def _set_aside(run: Run, manager, steps: list[int], failures: list[str], restored: str) -> None:
  """Moves checkpoints that did not restore to corrupt_checkpoints/ (the run saves those steps again)."""
  if run.is_writer:
    aside = run.run.path / "corrupt_checkpoints"
    aside.mkdir(parents=True, exist_ok=True)
    for step in steps:
      (run.run.checkpoints_dir / str(step)).rename(aside / f"{step}-{int(time.time())}")
    manager.reload()
  print(f"warning: {'; '.join(failures)}; resumed from {restored} instead", file=sys.stderr)


def _evaluate(run: Run, eval_step, state, eval_batches: list[np.ndarray], step: int) -> float:
  total = count = 0.0
  for local_bt in eval_batches:
    batch = run.global_batch(local_bt, local_bt.shape[0] * jax.process_count())
    loss_sum, n = eval_step(state["params"], state["model_state"], batch)
    total += float(loss_sum)
    count += float(n)
  loss = total / count
  tokens = budget.tokens_after(run.cfg, step)
  run.metrics.add({"step": step, "tokens": tokens, "flops": run.flops_per_token * tokens, "split": "eval",
                   "loss": loss})  # fmt: skip
  return loss


def train(cfg: Config, run_dir: str, *, attempt: int | None = None, progress: bool = True,
          devices: Sequence[jax.Device] | None = None) -> str:  # fmt: skip
  """Trains one run to the end (or until preempted); returns its final state: done|failed|preempted.

  `devices` restricts the run to some of this process's devices (default: all devices of the run).
  """
  multihost.initialize(cfg.distributed)
  run = Run(cfg, run_dir, attempt, progress, devices)
  _write_config_if_missing(run)
  _enable_compilation_cache(run.run)
  run.stop.install()
  step = 0
  try:
    tx = optim.optimizer(cfg)
    gdef = graphdef(cfg)
    iterator = data_lib.TrainIterator(cfg, process_index=jax.process_index(), process_count=jax.process_count())
    manager = _checkpoint_manager(run.run, cfg)
    state, shardings, abstract = _restore_or_init(run, manager, tx, iterator)
    step = run.step = int(state["step"])
    run.status("running", step)
    if run.progress:
      from mixlaws import console

      console.print_table(f"parameters of {run.run.path.name}", ["name", "shape", "dtype", "spec"],
                          parameter_table(abstract["params"], cfg.mesh.param_rules))  # fmt: skip
    return _loop(run, state, shardings, gdef, tx, iterator, manager, step)
  except TrainingFailed as e:
    run.metrics.flush()
    run.status("failed", max(step, run.step), error=str(e))
    return "failed"
  except Exception as e:
    run.metrics.flush()
    run.status("failed", max(step, run.step), error=f"{type(e).__name__}: {e}".splitlines()[0])
    raise


def train_claimed(cfg: Config, run_dir: str, *, progress: bool = True) -> str:
  """`mixlaws train`: trains an existing run dir under the same claim a worker takes (refusing, with the
  holder named, a run a live worker holds), so the two never write one checkpoint directory together.

  A new run dir, or a multi-process run (whose processes would each claim), trains without a claim.
  """
  from mixlaws import sweep

  if cfg.distributed.num_processes > 1 or not os.path.isdir(run_dir):
    return train(cfg, run_dir, progress=progress)
  won = sweep.claim_for_train(RunDir(run_dir))
  with sweep.holding(won):
    return train(cfg, run_dir, attempt=won.attempt, progress=progress)


def _write_config_if_missing(run: Run) -> None:
  if run.is_writer and not run.run.config_path.exists():
    record = {"study": run.run.path.parent.name, "run_id": run.run.path.name, "config": run.cfg.to_dict(),
              "counts": counting.run_counts(run.cfg).to_dict()}  # fmt: skip
    run.run.write_config(record)


def _loop(run: Run, state, shardings, gdef, tx, iterator, manager, step: int) -> str:
  cfg = run.cfg
  replicated = NamedSharding(run.mesh, PartitionSpec())
  train_step = jax.jit(make_train_step(cfg, gdef, tx, run.mesh), donate_argnums=0,
                       in_shardings=(shardings, run.batch_sharding, replicated), out_shardings=(shardings, None))  # fmt: skip
  learning_rates = optim.learning_rate(cfg)(np.arange(run.total_steps + 1)).astype(np.float32)
  eval_step = jax.jit(make_eval_step(cfg, gdef, run.mesh))
  eval_batches = list(data_lib.eval_batches(cfg, cfg.train.batch_size, process_index=jax.process_index(),
                                            process_count=jax.process_count()))  # fmt: skip
  bar = _progress_bar(run, step)
  run.timings["startup_s"] = time.perf_counter() - run.started_at
  pending = None  # (step, metrics, batch_size): read only after the next step has been dispatched
  last_time = time.perf_counter()

  def settle():
    nonlocal pending, last_time
    if pending is None:
      return None
    done_step, metrics, batch_size = pending
    pending = None
    values = jax.device_get(metrics)  # waits for this step only; the next one is already queued
    step_time = time.perf_counter() - last_time
    if "first_step_s" not in run.timings:
      run.timings["first_step_s"] = step_time
    record = run.record(done_step, values, step_time, batch_size)
    last_time = time.perf_counter()
    if bar:
      bar.update(done_step, record["loss"], batch_size * cfg.model.seq_len / max(step_time, 1e-9))
    run.status("running", done_step, force=False)
    return record

  def save(at_step: int) -> None:
    run.metrics.flush()  # before the checkpoint: a crash in between re-logs steps, never loses them
    manager.save(at_step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                  data=ocp.args.JsonSave(iterator.state())))  # fmt: skip
    manager.wait_until_finished()
    run.status("running", at_step)  # a kill -9 before the next heartbeat still shows the saved step

  while step < run.total_steps:
    batch_size = budget.batch_size_at(cfg, step)
    batch = run.global_batch(iterator.next(batch_size), batch_size)
    state, metrics = train_step(state, batch, learning_rates[step])
    settle()
    step += 1
    pending = (step, metrics, batch_size)
    evaluate = cfg.train.eval_every and step % cfg.train.eval_every == 0 and step < run.total_steps
    checkpoint = cfg.checkpoint.every_steps and step % cfg.checkpoint.every_steps == 0 and step < run.total_steps
    if evaluate or checkpoint:
      settle()
      if evaluate:
        _evaluate(run, eval_step, state, eval_batches, step)
      if checkpoint:
        save(step)
      last_time = time.perf_counter()  # the next step's time excludes evaluation and saving
    if step in run.fork_steps:  # a WSD trunk: the state a cooldown branch starts from
      settle()
      _save_fork(run, state, iterator, step)
      last_time = time.perf_counter()
    if run.stop.requested:
      settle()
      save(step)
      run.status("preempted", step, error=f"stopped by {run.stop.requested}")
      if bar:
        bar.close()
      return "preempted"
  settle()
  _evaluate(run, eval_step, state, eval_batches, step)
  save(step)
  run.metrics.close()
  run.status("done", step)
  if bar:
    bar.close()
  return "done"


class _ProgressBar:
  """step, loss, tokens/s and ETA on the terminal (rich)."""

  def __init__(self, name: str, total: int, start: int):
    import rich.progress

    self.progress = rich.progress.Progress(
        rich.progress.TextColumn(f"[bold]{name}"), rich.progress.BarColumn(),
        rich.progress.TextColumn("step {task.completed}/{task.total}"),
        rich.progress.TextColumn("loss {task.fields[loss]}"), rich.progress.TextColumn("{task.fields[tps]} tok/s"),
        rich.progress.TimeRemainingColumn(), transient=False)  # fmt: skip
    self.task = self.progress.add_task(name, total=total, completed=start, loss="-", tps="-")
    self.progress.start()

  def update(self, step: int, loss: float, tokens_per_s: float) -> None:
    self.progress.update(self.task, completed=step, loss=f"{loss:.4f}", tps=f"{tokens_per_s:,.0f}")

  def close(self) -> None:
    self.progress.stop()


def _progress_bar(run: Run, step: int) -> _ProgressBar | None:
  return _ProgressBar(run.run.path.name, run.total_steps, step) if run.progress else None


# ------------------------------------------------------------------------------------------------
# WSD trunks and branches (registry.branch_runs): the trunk saves its state and data-iterator state
# at each fork step under forks/ (never pruned); a branch's first attempt restores its fork read-only
# and then trains and checkpoints in its own run dir, so it never writes to the trunk's files.


def _lineage(run: RunDir):
  from mixlaws import registry

  if not run.config_path.exists():
    return None
  record = run.read_config().get("lineage")
  return None if record is None else registry.Lineage.from_dict(record, os.fspath(run.config_path))


def trunk_fork_steps(run: RunDir) -> frozenset[int]:
  """The steps a trunk saves fork checkpoints at (empty for any other run)."""
  lineage = _lineage(run)
  return frozenset(lineage.fork_steps) if lineage is not None and lineage.role == "trunk" else frozenset()


def branch_lineage(run: RunDir):
  """The run's registry.Lineage when it is a branch, else None."""
  lineage = _lineage(run)
  return lineage if lineage is not None and lineage.role == "branch" else None


def forks_directory(trunk_dir: RunDir) -> str:
  """<trunk>/forks, absolute (or a URL) as orbax wants it."""
  path = os.fspath(trunk_dir.path / "forks")
  return path if "://" in path else os.path.abspath(path)


def fork_exists(trunk_dir: RunDir, step: int) -> bool:
  """Whether the trunk's fork checkpoint at `step` is complete (orbax renames a finished save into place)."""
  path = trunk_dir.path / "forks" / str(step)
  return path.exists() and ocp.step.is_checkpoint_finalized(path)


def _fork_manager(trunk_dir: RunDir, read_only: bool) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=None, enable_async_checkpointing=False, create=not read_only,
                                         read_only=read_only)  # fmt: skip
  return ocp.CheckpointManager(forks_directory(trunk_dir), options=options)


def _save_fork(run: Run, state, iterator, step: int) -> None:
  """Saves the fork at `step` once; a trunk resumed past a fork replays to the same state, so it skips it."""
  if fork_exists(run.run, step):
    return
  manager = _fork_manager(run.run, read_only=False)
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                             data=ocp.args.JsonSave(iterator.state())))  # fmt: skip
  manager.wait_until_finished()
  manager.close()


def _restore_fork(run: Run, tx, iterator):
  """A branch's start: its trunk's fork checkpoint → train state and data-iterator state (read-only)."""
  lineage = branch_lineage(run.run)
  trunk = RunDir(run.run.path.parent / lineage.trunk)
  step = lineage.fork_steps[0]
  if not fork_exists(trunk, step):
    raise ValueError(f"{trunk.path}: no fork checkpoint at step {step} yet; train the trunk {lineage.trunk} first")
  abstract = jax.eval_shape(init_fn(run.cfg, tx))
  shardings = state_shardings(abstract, run.mesh, run.cfg.mesh.param_rules)
  target = abstract_with_shardings(abstract, shardings)
  manager = _fork_manager(trunk, read_only=True)
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                           data=ocp.args.JsonRestore()))  # fmt: skip
  iterator.restore(restored["data"])
  return restored["state"], shardings, abstract
