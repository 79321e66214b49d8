"""Mesh construction, logical→mesh rules and activation constraints."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from mixlaws import config, sharding


def _mesh_cfg(*overrides):
  return config.resolve(config.apply_overrides(config.base_config(), list(overrides))).mesh


def test_make_mesh_fills_wildcard_and_sets_axis_types():
  mesh = sharding.make_mesh(_mesh_cfg("mesh.fsdp=2", "mesh.expert=2"))
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 1, "expert": 2}
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


def test_make_mesh_rejects_sizes_that_do_not_fit():
  with pytest.raises(ValueError, match="^mesh.fsdp: the mesh axes multiply to 4 "):
    sharding.make_mesh(_mesh_cfg("mesh.data=2", "mesh.fsdp=2"))


def test_logical_to_spec():
  rules = (("batch", ("data", "fsdp", "expert")), ("expert", "expert"), ("embed", None), ("mlp", "tensor"))
  assert sharding.logical_to_spec(("batch", "embed"), rules) == P(("data", "fsdp", "expert"), None)
  # expert is already used by batch, so the expert dimension is left unsharded, not sharded twice
  assert sharding.logical_to_spec(("batch", "expert", "mlp"), rules) == P(("data", "fsdp", "expert"), None, "tensor")
  assert sharding.logical_to_spec(("expert", "batch"), rules) == P("expert", ("data", "fsdp"))
  with pytest.raises(ValueError, match="logical axis 'vocab' has no rule"):
    sharding.logical_to_spec(("vocab",), rules)


def test_param_specs_follow_metadata():
  cfg = _mesh_cfg()
  with nnx.use_eager_sharding(False):
    layer = nnx.Linear(8, 16, kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(), ("embed", "mlp")),
                       use_bias=False, rngs=nnx.Rngs(0))  # fmt: skip
  specs = sharding.param_specs(nnx.state(layer), cfg.param_rules)
  assert specs["kernel"] == P("fsdp", "tensor")


def test_constrain_is_a_no_op_outside_a_context_and_shards_inside():
  x = jnp.ones((8, 4))
  assert sharding.constrain(x, ("batch", "embed")) is x
  cfg = _mesh_cfg("mesh.fsdp=2", "mesh.expert=2")
  mesh, rules = sharding.make_mesh(cfg), cfg.activation_rules

  def f(y):
    with sharding.activation_sharding(mesh, rules):
      return sharding.constrain(y * 2, ("batch", "embed"))

  out = jax.jit(f)(x)
  assert out.sharding.is_equivalent_to(jax.sharding.NamedSharding(mesh, P(("data", "fsdp", "expert"), None)), 2)
  assert len(out.addressable_shards) == 8 and out.addressable_shards[0].data.shape == (1, 4)
