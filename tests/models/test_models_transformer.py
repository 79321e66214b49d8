"""The transformer LM: parameter counts, axis names, stacking, shapes, causality, remat, sharding."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from mixlaws import config, counting, models, sharding
from mixlaws.models import layers
from mixlaws.models.transformer import PER_LAYER, stack_plan

LOGICAL_AXES = {"batch", "seq", "embed", "mlp", "heads", "kv", "head_dim", "vocab", "expert", "layers"}


def _abstract(cfg):
  with nnx.use_eager_sharding(False):
    return nnx.eval_shape(lambda: models.Transformer(cfg.model, cfg.moe, rngs=nnx.Rngs(0)))


def _params(module):
  return jax.tree.leaves(nnx.state(module, nnx.Param), is_leaf=lambda x: isinstance(x, nnx.Variable))


@pytest.mark.parametrize(
  "overrides",
  [
    (),
    ("model.activation=gelu", "model.norm=layernorm", "model.positional=learned", "model.tied_embeddings=true"),
    ("moe.expansion_rate=4", "moe.granularity=2", "moe.router=token_choice"),
    ("moe.expansion_rate=8", "moe.granularity=4", "moe.router=token_choice", "model.activation=relu"),
    ("moe.expansion_rate=2", "moe.router=switch", "moe.n_shared_experts=2"),
    (
      "moe.expansion_rate=4",
      "moe.granularity=2",
      "moe.n_shared_experts=1",
      "model.n_layers=3",
      "moe.layers=second_half",
    ),
    ("moe.expansion_rate=4", "model.n_layers=3", "moe.layers=alternate", "model.positional=learned"),
    ("moe.expansion_rate=4", "model.n_layers=4", "moe.layers=alternate", "model.tied_embeddings=true"),
    ("moe.expansion_rate=4", "moe.granularity=2", "moe.router=expert_choice", "model.norm=layernorm"),
    ("moe.expansion_rate=4", "moe.router=expert_choice", "moe.output_norm=false"),
    ("moe.expansion_rate=4", "moe.granularity=2", "moe.router=mixture_of_tokens", "moe.n_shared_experts=1"),
  ],
)
def test_built_parameter_count_equals_counting(tiny_config, overrides):
  cfg = tiny_config(*overrides)
  built = sum(p.size for p in _params(_abstract(cfg)))
  assert built == counting.param_counts(counting.Shape.from_config(cfg)).total


def test_every_parameter_has_logical_axis_names(tiny_config):
  cfg = tiny_config(
    "moe.expansion_rate=4", "moe.granularity=2", "moe.router=expert_choice", "moe.n_shared_experts=1",
    "model.n_layers=3", "moe.layers=alternate", "model.positional=learned", "model.norm=layernorm",
  )  # fmt: skip
  model = _abstract(cfg)
  for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    names = sharding.logical_axes(variable)
    where = "/".join(map(str, path))
    assert len(names) == len(variable.shape) and set(names) - {None} <= LOGICAL_AXES, where
    # only the learned position table's row axis is deliberately unnamed (replicated)
    assert None not in names or path[-1] == "positions" and names == (None, "embed"), where
    assert (names[0] == "layers") == (path[0] == "stacks"), where
    assert ("expert" in names) == ("experts" in path or path[-1] == "router"), where
  specs = sharding.param_specs(nnx.state(model, nnx.Param), cfg.mesh.param_rules)
  assert specs["stacks"][0]["units"]["blocks"][1]["ffn"]["experts"]["up"] == P(None, "expert", "fsdp", "tensor")


@pytest.mark.parametrize("n_layers", range(1, 8))
def test_stack_plan_covers_every_layer_pattern(n_layers):
  for pattern in config.MOE_LAYER_PATTERNS:
    mask = config.moe_layer_mask(n_layers, pattern)
    plan = stack_plan(mask)
    assert sum((unit * repeats for unit, repeats in plan), ()) == mask
    assert len(plan) <= 2  # a constant number of scanned stacks, whatever the depth


def test_traced_program_does_not_grow_with_depth(tiny_config):
  def n_equations(n_layers):
    cfg = tiny_config(f"model.n_layers={n_layers}", "moe.expansion_rate=4", "moe.layers=alternate")
    graphdef, state = nnx.split(_abstract(cfg))
    tokens = jax.ShapeDtypeStruct((4, 8), jnp.int32)
    return len(jax.make_jaxpr(lambda s, t: nnx.merge(graphdef, s)(t))(state, tokens).eqns)

  assert n_equations(2) == n_equations(8)


def test_builds_outside_a_mesh_with_truncated_normal_init(tiny_config):
  cfg = tiny_config()
  nnx.eval_shape(lambda: models.Transformer(cfg.model, cfg.moe, rngs=nnx.Rngs(0)))  # no mesh, no sharding context
  with nnx.use_eager_sharding(False):
    w = layers.param(nnx.Rngs(0), cfg.model, (256, 512), 256, ("embed", "mlp"))
  values, std = np.asarray(w[...]), cfg.model.init_scale / np.sqrt(256)
  # truncated at two standard deviations, which leaves 0.88 of the untruncated spread
  assert np.abs(values).max() <= 2 * std and np.std(values) == pytest.approx(0.88 * std, rel=0.02)
  assert sharding.logical_axes(w) == ("embed", "mlp")


CAUSAL_CASES = {
  "dense_bf16": ("model.compute_dtype=bfloat16", "model.param_dtype=bfloat16"),
  "token_choice": ("moe.expansion_rate=4", "moe.granularity=2", "moe.router=token_choice"),
  "expert_choice": (
    "moe.expansion_rate=4", "moe.granularity=2", "moe.router=expert_choice", "moe.group_size=4",
    "model.positional=learned", "model.norm=layernorm",
  ),
  "mixture_of_tokens": ("moe.expansion_rate=4", "moe.router=mixture_of_tokens", "model.activation=gelu"),
}  # fmt: skip


def _tokens(cfg):
  b, t = cfg.train.batch_size, cfg.model.seq_len
  return jnp.arange(b * t, dtype=jnp.int32).reshape(b, t)  # every (sequence, position) has its own token


@pytest.mark.parametrize("case", CAUSAL_CASES)
def test_shapes_dtypes_and_causality_by_gradients(tiny_config, materialize, fast_jit, case):
  cfg = tiny_config(*CAUSAL_CASES[case])
  model = materialize(lambda: models.Transformer(cfg.model, cfg.moe, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(model)
  tokens_bt, t0 = _tokens(cfg), 3

  def embed_grad_and_outputs(state):
    def logits_at_t0(state):
      logits_btv, aux = nnx.merge(graphdef, state)(tokens_bt, train=True)
      return logits_btv[:, t0].sum(), (logits_btv, aux)

    grads, outputs = jax.grad(logits_at_t0, has_aux=True)(state)
    return grads["embed"], outputs  # XLA prunes the unused weight gradients

  embed_grad, (logits_btv, aux) = fast_jit(embed_grad_and_outputs)(state)
  assert logits_btv.shape == (4, 8, 259) and logits_btv.dtype == jnp.float32
  assert set(aux) == set(models.AUX_KEYS) | {PER_LAYER + k for k in models.AUX_KEYS}
  assert all(aux[k].shape == () and np.isfinite(aux[k]) for k in models.AUX_KEYS)
  n_moe = 0 if case == "dense_bf16" else cfg.model.n_layers
  assert all(aux[PER_LAYER + k].shape == (n_moe,) for k in models.AUX_KEYS)
  if case != "dense_bf16":
    assert float(aux["router_entropy"]) > 0
  param_dtype = jnp.dtype(cfg.model.param_dtype)
  assert all(p.dtype == param_dtype for p in _params(model))
  # the blocks' matmuls run in the compute dtype (the logits come out in float32 regardless)
  short = {"bfloat16": "bf16", "float32": "f32"}[cfg.model.compute_dtype]
  assert re.search(short + r"\[[\d,]*\] = dot_general", str(jax.make_jaxpr(embed_grad_and_outputs)(state)))
  # d logits[:, t0] / d embedding rows: zero for every token after t0 (in any sequence), not before
  row_norms_bt = np.linalg.norm(np.asarray(embed_grad[...], np.float32)[np.asarray(tokens_bt)], axis=-1)
  assert np.all(row_norms_bt[:, t0 + 1 :] == 0)
  assert np.all(row_norms_bt[:, : t0 + 1] > 0)


def test_remat_block_checkpoints_every_block(tiny_config):
  def n_checkpoints(remat):
    cfg = tiny_config(f"model.remat={remat}", "model.n_layers=4", "moe.expansion_rate=2", "moe.layers=alternate")
    graphdef, state = nnx.split(_abstract(cfg))
    loss = lambda s: jnp.mean(nnx.merge(graphdef, s)(_tokens(cfg))[0])
    return str(jax.make_jaxpr(loss)(state)).count("remat2[")  # jax.checkpoint's primitive

  # one scanned unit of (dense, MoE) blocks: each block is its own checkpoint
  assert n_checkpoints("none") == 0 and n_checkpoints("block") == 2


def test_sharded_forward_matches_unsharded(tiny_config, materialize, fast_jit):
  cfg = tiny_config(
    "moe.expansion_rate=4", "moe.router=token_choice", "mesh.data=2", "mesh.fsdp=2", "mesh.expert=2",
    "train.batch_size=8", "model.n_heads=2", "moe.capacity_factor=0",
  )  # fmt: skip
  # Dropless: under expert parallelism each data shard routes its own tokens, so only a dropless router
  # keeps the same tokens as one global routing (tests/models/test_expert_parallel.py covers capacity).
  graphdef, state = nnx.split(materialize(lambda: models.Transformer(cfg.model, cfg.moe, rngs=nnx.Rngs(0))))
  tokens_bt = jnp.arange(64, dtype=jnp.int32).reshape(8, 8)
  forward = lambda s, t: nnx.merge(graphdef, s)(t, train=True)
  expected, _ = fast_jit(forward)(state, tokens_bt)

  mesh = sharding.make_mesh(cfg.mesh)

  def sharded_forward(s, t):
    with sharding.activation_sharding(mesh, cfg.mesh.activation_rules):
      return forward(s, t)

  param_shardings = sharding.param_shardings(state, mesh, cfg.mesh.param_rules)
  batch = NamedSharding(mesh, sharding.logical_to_spec(("batch", "seq"), cfg.mesh.activation_rules))
  state_sharded = jax.device_put(state, param_shardings)
  logits, _ = fast_jit(sharded_forward, in_shardings=(param_shardings, batch))(state_sharded, tokens_bt)
  assert len(logits.sharding.device_set) == 8
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
