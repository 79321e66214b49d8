"""MoE routers and dispatch: equivalences, drops, quotas, capacity, losses."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mixlaws.models import dispatch, routers
from mixlaws.models.layers import Experts, Mlp
from mixlaws.models.moe import MoE

B, T, D = 8, 6, 16
DISPATCHES = ("einsum", "gather", "ragged")


@pytest.fixture(name="cfgs")
def cfgs_fixture(tiny_config):
  def cfgs(*overrides):
    cfg = tiny_config("model.d_model=16", "model.n_heads=1", "model.d_ff=32", "train.batch_size=8", *overrides)
    return cfg.model, cfg.moe

  return cfgs


def _normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _logits(seed, n_experts, skew=0.0):
  return _normal(seed, (B, T, n_experts)) + skew * jnp.arange(n_experts)  # skew > 0 crowds high-numbered experts


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _token_choice(logits, top_k, capacity, order="before_topk"):
  return routers.token_choice(logits, top_k, capacity, order)


def test_moe_with_one_expert_equals_the_dense_ffn(cfgs, materialize, fast_jit):
  model_cfg, moe_cfg = cfgs("moe.router=switch", "moe.capacity_factor=1.0")
  moe = materialize(lambda: MoE(model_cfg, moe_cfg, rngs=nnx.Rngs(0)))
  dense = materialize(lambda: Mlp(model_cfg, model_cfg.d_ff, rngs=nnx.Rngs(0)), seed=1)
  assert moe.moe.n_experts == 1
  for part in ("up", "gate", "down"):
    getattr(dense, part)[...] = getattr(moe.experts, part)[...][0]
  x = _normal(0, (B, T, D))

  @fast_jit
  def run(moe, dense):
    outs = {}
    for name in DISPATCHES:
      moe.moe = dataclasses.replace(moe_cfg, dispatch=name)
      outs[name] = moe(x, train=True)
    return outs, dense(x.reshape(-1, D)).reshape(B, T, D)

  outs, expected = run(moe, dense)
  assert float(jnp.abs(expected).mean()) > 0.1
  for name, (y, stats) in outs.items():
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5, err_msg=name)
    assert float(stats["dropped_frac"]) == 0.0


def _experts(cfgs, materialize, n_experts, activation="swiglu"):
  model_cfg, _ = cfgs(f"model.activation={activation}")
  return materialize(lambda: Experts(model_cfg, n_experts, 24, rngs=nnx.Rngs(0)))


def test_token_dispatches_agree_without_drops_and_einsum_gather_drop_alike(cfgs, materialize, fast_jit):
  n_experts, top_k = 8, 2
  experts, x_sd = _experts(cfgs, materialize, n_experts), _normal(1, (B * T, D))

  @fast_jit
  def run(logits):
    outs = {}
    for capacity in (B * T, 4):  # every token fits in every expert; most picks overflow
      routing, stats = routers.token_choice(logits, top_k, capacity, renormalize=True)
      outs[capacity] = ({name: fn(x_sd, routing, experts) for name, fn in dispatch.TOKEN_DISPATCH.items()}, stats)
    return outs

  outs = run(_logits(2, n_experts, skew=0.3))
  full, stats = outs[B * T]
  assert float(stats["dropped_frac"]) == 0.0 and float(jnp.abs(full["gather"]).mean()) > 0.1
  np.testing.assert_allclose(full["einsum"], full["ragged"], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(full["gather"], full["ragged"], atol=1e-5, rtol=1e-5)
  tight, stats = outs[4]
  assert float(stats["dropped_frac"]) > 0.2
  np.testing.assert_allclose(tight["einsum"], tight["gather"], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(tight["ragged"], full["ragged"])  # ragged_dot never drops
  assert np.abs(tight["gather"] - full["gather"]).max() > 0.1 * np.abs(full["gather"]).max()


def test_token_dispatch_gradients_agree_with_and_without_drops(cfgs, materialize, fast_jit):
  """gather's hand-written backward (gathers for scatters) against autodiff of einsum and ragged."""
  n_experts, top_k = 8, 2
  experts, x_sd = _experts(cfgs, materialize, n_experts), _normal(5, (B * T, D))
  target_sd = _normal(6, (B * T, D))

  @fast_jit
  def run(experts, x_sd, logits):
    grads = {}
    for capacity in (B * T, 4):
      for name, fn in dispatch.TOKEN_DISPATCH.items():

        def loss(experts, x_sd, logits, fn=fn, capacity=capacity):
          routing, _ = routers.token_choice(logits, top_k, capacity, renormalize=True)
          return jnp.sum(fn(x_sd, routing, experts) * target_sd)

        grads[capacity, name] = jax.grad(loss, argnums=(0, 1, 2))(experts, x_sd, logits)
    return grads

  grads = run(experts, x_sd, _logits(7, n_experts, skew=0.3))
  pairs = [(B * T, "einsum", "gather"), (B * T, "ragged", "gather"), (4, "einsum", "gather")]
  for capacity, reference, name in pairs:
    for want, got in zip(jax.tree.leaves(grads[capacity, reference]), jax.tree.leaves(grads[capacity, name])):
      assert float(jnp.abs(want).max()) > 0
      np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5, err_msg=f"{name} vs {reference}, C={capacity}")


def test_expert_choice_dispatches_agree(cfgs, materialize, fast_jit):
  n_experts, group_size = 8, 4
  experts, x_sd = _experts(cfgs, materialize, n_experts, activation="relu"), _normal(3, (B * T, D))
  quota = routers.expert_quota(group_size, granularity=2, n_experts=n_experts)

  @fast_jit
  def run(logits):
    routing, _ = routers.expert_choice(logits, group_size, quota)
    return {name: fn(x_sd, routing, experts) for name, fn in dispatch.EXPERT_DISPATCH.items()}

  outs = run(_logits(4, n_experts))
  assert float(jnp.abs(outs["gather"]).mean()) > 0.1
  np.testing.assert_allclose(outs["einsum"], outs["gather"], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(outs["ragged"], outs["gather"], atol=1e-5, rtol=1e-5)


def test_expert_choice_gives_every_expert_its_quota_in_every_group():
  n_experts, group_size, granularity = 8, 8, 2
  quota = routers.expert_quota(group_size, granularity, n_experts)
  assert quota == 2  # round(2/8 · 8)
  route = jax.jit(routers.expert_choice, static_argnums=(1, 2))
  routing, stats = route(_logits(5, n_experts, skew=2.0), group_size, quota)
  token_ec = np.asarray(routing.token_ec)
  assert token_ec.shape == (n_experts, (B // group_size) * T * quota)
  sequence_ec, position_ec = token_ec // T, token_ec % T
  for e in range(n_experts):
    # a group is (sequence // group_size, position); each expert holds `quota` distinct tokens of each group
    groups, counts = np.unique(np.stack([sequence_ec[e] // group_size, position_ec[e]]), axis=1, return_counts=True)
    assert groups.shape[1] == (B // group_size) * T and set(counts) == {quota}
    assert len(set(token_ec[e])) == token_ec.shape[1]
  picked = np.bincount(token_ec.reshape(-1), minlength=B * T)
  assert float(stats["dropped_frac"]) == pytest.approx(np.mean(picked == 0)) and np.mean(picked == 0) > 0


def test_expert_quota_rejects_groups_too_small():
  with pytest.raises(ValueError, match="^moe.group_size: expert choice gives each of 64 experts"):
    routers.expert_quota(16, 1, 64)


def test_capacity_is_never_exceeded_and_dropped_fraction_is_a_hand_count():
  n_experts, top_k, capacity = 4, 2, 7
  routing, stats = _token_choice(_logits(6, n_experts, skew=1.0), top_k, capacity)
  expert, keep, pos = (np.asarray(a) for a in (routing.expert_btp, routing.keep_btp, routing.position_btp))
  demand = np.bincount(expert.reshape(-1), minlength=n_experts)
  kept = np.bincount(expert[keep], minlength=n_experts)
  assert kept.max() <= capacity and demand.max() > capacity
  np.testing.assert_array_equal(kept, np.minimum(demand, capacity))
  assert float(stats["dropped_frac"]) == pytest.approx(np.maximum(demand - capacity, 0).sum() / expert.size)
  # slots are 0 … demand-1 per expert, handed out by (pick rank, position, sequence)
  for e in range(n_experts):
    b, t, p = np.nonzero(expert == e)
    order = np.lexsort((b, t, p))
    np.testing.assert_array_equal(pos[b[order], t[order], p[order]], np.arange(demand[e]))


def test_drops_never_depend_on_later_positions():
  n_experts, top_k, capacity = 4, 1, 6
  logits = _logits(7, n_experts, skew=1.0)
  keep = _token_choice(logits, top_k, capacity)[0].keep_btp
  changed = logits.at[:, 3:].set(_logits(8, n_experts, skew=-1.0)[:, 3:])
  keep_changed = _token_choice(changed, top_k, capacity)[0].keep_btp
  np.testing.assert_array_equal(keep[:, :3], keep_changed[:, :3])
  assert not np.array_equal(keep[:, 3:], keep_changed[:, 3:])


def test_router_weights_softmax_before_and_after_topk():
  logits = _logits(9, 8)
  before, _ = _token_choice(logits, 2, B * T, "before_topk")
  after, _ = _token_choice(logits, 2, B * T, "after_topk")
  top = np.sort(np.asarray(logits), axis=-1)[..., ::-1][..., :2]
  np.testing.assert_array_equal(before.expert_btp, after.expert_btp)
  np.testing.assert_allclose(
    before.weight_btp, np.exp(top) / np.exp(np.asarray(logits)).sum(-1, keepdims=True), rtol=1e-5
  )
  np.testing.assert_allclose(after.weight_btp, np.exp(top) / np.exp(top).sum(-1, keepdims=True), rtol=1e-5)


def test_load_balance_loss_is_at_its_minimum_for_a_uniform_router():
  n_experts, top_k = 8, 2
  _, uniform = _token_choice(jnp.zeros((B, T, n_experts)), top_k, B * T)
  assert float(uniform["load_balance_loss"]) == pytest.approx(top_k, rel=1e-6)
  assert float(uniform["router_entropy"]) == pytest.approx(np.log(n_experts), rel=1e-5)
  _, skewed = _token_choice(_logits(9, n_experts, skew=1.0), top_k, B * T)
  assert float(skewed["load_balance_loss"]) > top_k + 0.5
  assert float(skewed["load_cv"]) > 0.5


def test_z_loss_matches_its_formula():
  logits = _logits(10, 8)
  _, stats = _token_choice(logits, 2, B * T)
  expected = np.mean(np.log(np.exp(np.asarray(logits, np.float64)).sum(-1)) ** 2)
  assert float(stats["z_loss"]) == pytest.approx(expected, rel=1e-5)


def test_evaluation_is_dropless_and_training_drops(cfgs, materialize, fast_jit):
  model_cfg, moe_cfg = cfgs(
    "moe.expansion_rate=4",
    "moe.router=token_choice",
    "moe.top_k=1",
    "moe.capacity_factor=0.5",
    "moe.eval_capacity_factor=0",
  )
  moe = materialize(lambda: MoE(model_cfg, moe_cfg, rngs=nnx.Rngs(0)))
  x = _normal(11, (B, T, D))
  train_stats, eval_stats = fast_jit(lambda m: (m(x, True)[1], m(x, False)[1]))(moe)
  assert float(train_stats["dropped_frac"]) >= 0.5 and float(eval_stats["dropped_frac"]) == 0.0


def test_mixture_of_tokens_mixes_each_group_and_discrete_mode_is_one_hot_expert_choice(cfgs, materialize, fast_jit):
  n_experts, group_size = 4, 4
  experts, x_sd, logits = _experts(cfgs, materialize, n_experts), _normal(13, (B * T, D)), _logits(12, n_experts)

  @fast_jit
  def run(logits):
    merge_ngte, _ = routers.mixture_weights(logits, group_size, temperature=0.5)
    routing, _ = routers.discrete_mixture(logits, group_size, temperature=0.5)
    cold_ngte, _ = routers.mixture_weights(logits, group_size, temperature=1e-4)
    return (
      merge_ngte,
      routing,
      dispatch.mixture(x_sd, cold_ngte, experts),
      dispatch.experts_gather(x_sd, routing, experts),
    )

  merge_ngte, routing, cold_out, discrete_out = run(logits)
  expected = jax.nn.softmax(logits.reshape(B // group_size, group_size, T, n_experts) / 0.5, axis=1)
  np.testing.assert_allclose(merge_ngte, expected, rtol=1e-5)  # softmax over each group's tokens, per expert
  np.testing.assert_array_equal(routing.pick_nteq[..., 0], np.argmax(np.asarray(expected), axis=1))
  assert set(np.asarray(routing.weight_ec).reshape(-1)) == {1.0}
  # as the temperature goes to 0 the continuous layer becomes its discrete (expert choice) form
  assert float(jnp.abs(discrete_out).mean()) > 0.1
  np.testing.assert_allclose(cold_out, discrete_out, atol=1e-5, rtol=1e-5)
