"""A run's checkpoint restored onto its mesh, and batched scoring and sampling with it.

Rows are token ids that start with EOS, the token that precedes every document in training (packing
joins documents with EOS). Rows longer than the model's context keep their last seq_len + 1 tokens.
Batches are padded with PAD rows to a multiple of the batch-sharded devices (and of the routing
group for expert choice and mixture of tokens), and to a power-of-two width, so a task compiles a
handful of shapes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from mixlaws import data, optim, sharding, train
from mixlaws.config import Config
from mixlaws.rundir import RunDir

MIN_WIDTH = 16  # narrowest input width compiled


def _manager(run: RunDir) -> ocp.CheckpointManager:
  # Never saves, so never deletes: no need for read_only, which logs a warning per call.
  options = ocp.CheckpointManagerOptions(create=False, max_to_keep=None)
  return ocp.CheckpointManager(run.orbax_directory(), options=options)


def checkpoint_steps(run: RunDir) -> list[int]:
  """Steps of the run's finished checkpoints, oldest first."""
  if not run.checkpoints_dir.exists():
    return []
  return sorted(_manager(run).all_steps())


@dataclasses.dataclass
class Model:
  """A restored model on its mesh, ready to score and sample."""

  cfg: Config
  step: int
  mesh: Mesh
  gdef: nnx.GraphDef
  params: Any
  model_state: Any

  def __post_init__(self):
    self.tokenizer = data.tokenizer(self.cfg.data)
    rules = self.cfg.mesh.activation_rules
    self.batch_sharding = NamedSharding(self.mesh, sharding.logical_to_spec(("batch", None), rules))
    spec = self.batch_sharding.spec[0]
    axes = spec if isinstance(spec, tuple) else (spec,) if spec else ()
    multiple = math.prod(self.mesh.shape[a] for a in axes)
    if self.cfg.moe.is_moe and self.cfg.moe.router in ("expert_choice", "mixture_of_tokens"):
      multiple = math.lcm(multiple, self.cfg.moe.group_size)  # these routers group whole sequences
    self.row_multiple = multiple
    self._score, self._sample = _jitted(self.gdef, self.mesh, rules)

  def rows_per_batch(self, batch_size: int) -> int:
    """`batch_size` (0 → the run's train.batch_size) rounded up to what the mesh and router need."""
    wanted = batch_size or self.cfg.train.batch_size
    return -(-wanted // self.row_multiple) * self.row_multiple

  def width(self, n_tokens: int) -> int:
    """Input width for rows of up to n_tokens tokens (inputs drop the last token): a power of two."""
    return min(self.cfg.model.seq_len, max(MIN_WIDTH, 1 << max(n_tokens - 2, 0).bit_length()))

  def loglik(self, rows: Sequence[tuple[list[int], list[int]]], batch_size: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-likelihood of each (context, continuation)'s continuation, and its scored token count."""
    eos, seq_len = self.tokenizer.eos_id, self.cfg.model.seq_len
    full = [([eos] + list(ctx) + list(cont))[-(seq_len + 1) :] for ctx, cont in rows]
    scored = np.array([min(len(cont), len(f) - 1) for (_, cont), f in zip(rows, full)])
    out = np.zeros(len(rows))
    b = self.rows_per_batch(batch_size)
    order = np.argsort([len(f) for f in full], kind="stable")  # similar lengths share a batch width
    for start in range(0, len(order), b):
      idx = order[start : start + b]
      t = self.width(max(len(full[i]) for i in idx))
      tokens_bw = np.full((b, t + 1), self.tokenizer.pad_id, np.int32)
      mask_bw = np.zeros((b, t + 1), np.float32)
      for r, i in enumerate(idx):
        tokens_bw[r, : len(full[i])] = full[i]
        mask_bw[r, len(full[i]) - scored[i] : len(full[i])] = 1.0
      sums_b = self._score(self.params, self.model_state, self._put(tokens_bw), self._put(mask_bw))
      out[idx] = np.asarray(sums_b)[: len(idx)]
    return out, scored

  def sample(
    self, prompts: Sequence[list[int]], n: int, max_new: int, temperature: float, seed: int, batch_size: int = 0
  ) -> list[list[list[int]]]:
    """`n` completions of `max_new` tokens for each prompt; temperature 0 → greedy."""
    eos, seq_len = self.tokenizer.eos_id, self.cfg.model.seq_len
    if max_new >= seq_len:
      raise ValueError(f"model.seq_len: {seq_len} tokens leave no room for a prompt and {max_new} new tokens")
    full = [([eos] + list(p))[-(seq_len - max_new) :] for p in prompts for _ in range(n)]
    b = self.rows_per_batch(batch_size)
    out: list[list[int]] = [[] for _ in full]
    key = jax.random.key(seed)
    for number, start in enumerate(range(0, len(full), b)):
      rows = full[start : start + b]
      t = self.width(max(len(r) for r in rows) + max_new + 1)
      tokens_bt = np.full((b, t), self.tokenizer.pad_id, np.int32)
      lengths_b = np.ones(b, np.int32)  # padding rows generate after their first token
      for r, row in enumerate(rows):
        tokens_bt[r, : len(row)] = row
        lengths_b[r] = len(row)
      done_bt = self._sample(self.params, self.model_state, self._put(tokens_bt), jnp.asarray(lengths_b),
                             jax.random.fold_in(key, number), max_new=max_new, temperature=temperature)  # fmt: skip
      done_bt = np.asarray(done_bt)
      for r, row in enumerate(rows):
        out[start + r] = done_bt[r, len(row) : len(row) + max_new].tolist()
    return [out[i * n : (i + 1) * n] for i in range(len(prompts))]

  def _put(self, x: np.ndarray) -> jax.Array:
    return jax.device_put(x, self.batch_sharding)


@functools.cache
def _jitted(gdef: nnx.GraphDef, mesh: Mesh, rules: sharding.Rules):
  """Jitted scoring and sampling, shared by every model of one shape: a sweep's runs compile once."""

  def score(params, model_state, tokens_bw, mask_bw):
    with sharding.activation_sharding(mesh, rules):
      logits_btv, _ = nnx.merge(gdef, params, model_state)(tokens_bw[:, :-1], train=False)
    logp_btv = jax.nn.log_softmax(logits_btv.astype(jnp.float32), axis=-1)
    target_logp_bt = jnp.take_along_axis(logp_btv, tokens_bw[:, 1:, None], axis=-1)[..., 0]
    return jnp.sum(target_logp_bt * mask_bw[:, 1:], axis=-1)

  # Without a KV cache each new token reruns the whole window; the generative tasks are short.
  def sample(params, model_state, tokens_bt, lengths_b, key, max_new: int, temperature: float):
    rows_b = jnp.arange(tokens_bt.shape[0])

    # The state rides in the loop carry: NNX refuses Variables traced outside the loop body.
    def one_token(i, carry):
      params, model_state, tokens_bt, key = carry
      key, draw = jax.random.split(key)
      with sharding.activation_sharding(mesh, rules):
        logits_btv, _ = nnx.merge(gdef, params, model_state)(tokens_bt, train=False)
      last_b = lengths_b + i - 1  # position whose logits predict the next token
      logits_bv = logits_btv[rows_b, last_b].astype(jnp.float32)
      if temperature > 0:
        next_b = jax.random.categorical(draw, logits_bv / temperature, axis=-1)
      else:
        next_b = jnp.argmax(logits_bv, axis=-1)
      return params, model_state, tokens_bt.at[rows_b, last_b + 1].set(next_b.astype(tokens_bt.dtype)), key

    return jax.lax.fori_loop(0, max_new, one_token, (params, model_state, tokens_bt, key))[2]

  return jax.jit(score), jax.jit(sample, static_argnames=("max_new", "temperature"))


def load(run: RunDir, cfg: Config, step: int | None = None, devices: Sequence[jax.Device] | None = None) -> Model:
  """Restores parameters and model state (not the optimizer) of checkpoint `step` (None → latest)."""
  steps = checkpoint_steps(run)
  if not steps:
    raise ValueError(f"{run.path}: has no checkpoint to evaluate")
  step = steps[-1] if step is None else step
  if step not in steps:
    raise ValueError(f"--step: {step} is not a checkpoint of {run.path} (it has {', '.join(map(str, steps))})")
  mesh = sharding.make_mesh(cfg.mesh, devices)
  abstract = jax.eval_shape(train.init_fn(cfg, optim.optimizer(cfg)))
  target = train.abstract_with_shardings(abstract, train.state_shardings(abstract, mesh, cfg.mesh.param_rules))
  wanted = {"params": target["params"], "model_state": target["model_state"]}
  # partial_restore reads only the named subtrees: the AdamW moments (2x the parameters) stay on disk.
  args = ocp.args.PyTreeRestore(item=wanted, restore_args=ocp.checkpoint_utils.construct_restore_args(wanted),
                                partial_restore=True)  # fmt: skip
  restored = _manager(run).restore(step, args=ocp.args.Composite(state=args))["state"]
  return Model(cfg, step, mesh, train.graphdef(cfg), restored["params"], restored["model_state"])
