"""Expert parallelism on 8 fake devices equals one device in loss and gradients, for every router.

The reference is today's one-device path (`MoE` outside any mesh). Under a capacity, each device routes
its own tokens, so the reference for those cases runs the one-device path on each device's tokens
(vmapped over the 8 shards); its router losses come from the whole batch, as neither depends on capacity.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mixlaws import config, sharding
from mixlaws.models import expert_parallel
from mixlaws.models.moe import MoE

N_SHARDS = 8  # token shards: data × expert = 8 devices
WEIGHTS = {"load_balance_loss": 0.01, "z_loss": 0.001}

# (expert axis size, sequences, positions, overrides, capacity-limited). E·G = expansion_rate · granularity.
CASES = {
  "token_choice-capacity-EG8-X2": (2, 16, 8, ["moe.expansion_rate=4", "moe.granularity=2", "moe.router=token_choice",
                                              "moe.capacity_factor=1.0", "moe.dispatch=gather"], True),
  "token_choice-ragged-EG64-X8": (8, 16, 8, ["moe.expansion_rate=8", "moe.granularity=8", "moe.router=token_choice",
                                             "moe.capacity_factor=0", "moe.dispatch=ragged"], False),
  "switch-capacity-EG64-X4": (4, 16, 8, ["moe.expansion_rate=64", "moe.router=switch", "moe.capacity_factor=1.0",
                                         "moe.dispatch=einsum"], True),
  "switch-ragged-a2a-EG8-X2": (2, 16, 8, ["moe.expansion_rate=8", "moe.router=switch", "moe.capacity_factor=0",
                                          "moe.dispatch=ragged"], False),
  "expert_choice-EG64-X8": (8, 32, 4, ["moe.expansion_rate=4", "moe.granularity=16", "moe.router=expert_choice",
                                       "moe.group_size=4", "moe.dispatch=gather"], False),
  "mixture_of_tokens-EG8-X4": (4, 16, 8, ["moe.expansion_rate=4", "moe.granularity=2",
                                          "moe.router=mixture_of_tokens", "moe.group_size=2"], False),
  "mixture_of_tokens-discrete-ragged-EG64-X2": (2, 16, 8, ["moe.expansion_rate=8", "moe.granularity=8",
                                                           "moe.router=mixture_of_tokens", "moe.discrete_routing=true",
                                                           "moe.group_size=2", "moe.dispatch=ragged"], False),
}  # fmt: skip


def ragged_all_to_all_by_its_docstring(operand, output, input_offsets, send_sizes, output_offsets, recv_sizes, *,
                                       axis_name):  # fmt: skip
  """`jax.lax.ragged_all_to_all` as its docstring's pseudocode says, from a dense all_to_all (runs on CPU)."""
  n, slot = operand.shape[0], jnp.arange(operand.shape[0])
  src = jnp.where(slot < send_sizes[:, None], input_offsets[:, None] + slot, n)
  blocks = jnp.concatenate([operand, jnp.zeros_like(operand[:1])])[src.reshape(-1)]
  received = jax.lax.all_to_all(blocks, axis_name, 0, 0, tiled=True).reshape(len(send_sizes), n, -1)
  at = jax.lax.all_to_all(output_offsets, axis_name, 0, 0, tiled=True)
  dest = jnp.where(slot < recv_sizes[:, None], at[:, None] + slot, output.shape[0])
  return output.at[dest.reshape(-1)].set(received.reshape(-1, operand.shape[1]), mode="drop")


def _normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _loss(moe, x, r, capacity_limited):
  y, stats = moe(x, train=True)
  if capacity_limited:  # the one-device path on each device's tokens, as expert parallelism routes them
    y = jax.vmap(lambda xs: moe(xs, train=True)[0])(x.reshape(N_SHARDS, -1, *x.shape[1:])).reshape(x.shape)
  return jnp.sum(y * r) + sum(w * stats[k] for k, w in WEIGHTS.items()), stats


@pytest.mark.parametrize("case", list(CASES))
def test_expert_parallel_equals_one_device(case, tiny_config, materialize, fast_jit, monkeypatch):
  n_expert, b, t, overrides, capacity_limited = CASES[case]
  cfg = tiny_config("model.d_model=16", "model.n_heads=1", "model.d_ff=32", f"model.seq_len={t}",
                    f"train.batch_size={b}", *overrides)  # fmt: skip
  if "a2a" in case:  # the ragged_all_to_all arguments, checked against the op's documented semantics
    monkeypatch.setattr(expert_parallel, "ragged_all_to_all", ragged_all_to_all_by_its_docstring)
    monkeypatch.setattr(expert_parallel, "ragged_collectives", lambda: True)
  graphdef, params = nnx.split(materialize(lambda: MoE(cfg.model, cfg.moe, rngs=nnx.Rngs(0))))
  x, r = _normal(0, (b, t, 16)), _normal(1, (b, t, 16))
  mesh_cfg = config.MeshConfig(data=N_SHARDS // n_expert, expert=n_expert)
  mesh = sharding.make_mesh(mesh_cfg)

  def losses(params, x, expert_parallel):
    moe = nnx.merge(graphdef, params)
    if not expert_parallel:
      return _loss(moe, x, r, capacity_limited)
    with sharding.activation_sharding(mesh, mesh_cfg.activation_rules, mesh_cfg.param_rules):
      return _loss(moe, x, r, False)

  grad = jax.value_and_grad(losses, argnums=(0, 1), has_aux=True)
  (ref, ep) = fast_jit(lambda p, x: (grad(p, x, False), grad(p, x, True)))(params, x)
  (ref_loss, ref_stats), ref_grads = ref
  (ep_loss, ep_stats), ep_grads = ep
  np.testing.assert_allclose(ep_loss, ref_loss, rtol=1e-5)
  for key in ref_stats:
    if not (capacity_limited and key == "dropped_frac"):
      np.testing.assert_allclose(ep_stats[key], ref_stats[key], rtol=1e-5, atol=1e-6, err_msg=key)
  if capacity_limited:
    assert float(ep_stats["dropped_frac"]) > 0.05  # the capacity binds, so local routing is what is tested
  leaves = jax.tree_util.tree_leaves_with_path(ref_grads)
  assert len(leaves) >= 5
  for (path, want), got in zip(leaves, jax.tree.leaves(ep_grads), strict=True):
    scale = float(jnp.max(jnp.abs(want)))
    assert scale > 0, path
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize(
  ("overrides", "n_expert", "field"),
  [
    (["moe.expansion_rate=4", "moe.router=switch"], 8, "mesh.expert"),  # 4 experts over 8 devices
    (
      ["moe.expansion_rate=4", "moe.granularity=2", "moe.router=expert_choice", "moe.group_size=4"],
      2,
      "moe.group_size",
    ),
  ],
)
def test_expert_parallelism_rejects_what_it_cannot_split_in_one_line(overrides, n_expert, field, tiny_config,
                                                                   materialize):  # fmt: skip
  cfg = tiny_config("model.d_model=16", "model.n_heads=1", "model.d_ff=32", "train.batch_size=16", *overrides)
  moe = materialize(lambda: MoE(cfg.model, cfg.moe, rngs=nnx.Rngs(0)))
  mesh_cfg = config.MeshConfig(data=N_SHARDS // n_expert, expert=n_expert)
  x = jax.ShapeDtypeStruct((16, 8, 16), jnp.float32)
  with sharding.activation_sharding(sharding.make_mesh(mesh_cfg), mesh_cfg.activation_rules):
    with pytest.raises(ValueError, match=field) as raised:
      jax.eval_shape(lambda x: moe(x, train=True), x)
  assert "\n" not in str(raised.value)
