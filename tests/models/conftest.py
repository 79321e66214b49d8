"""Helpers for the model tests: tiny configs, and modules filled with host-side random weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mixlaws import config

TINY = (
  "model.d_model=32",
  "model.n_heads=2",
  "model.n_layers=2",
  "model.vocab_size=259",
  "model.seq_len=8",
  "train.batch_size=4",
  "moe.group_size=2",
)


def tiny_config(*overrides: str) -> config.Config:
  return config.resolve(config.apply_overrides(config.base_config(), list(TINY) + list(overrides)))


def materialize(make, seed: int = 0) -> nnx.Module:
  """The module `make()` builds, with its shapes traced abstractly and numpy random weights filled in.

  Compiling a module's random initialisers costs about half a second of XLA CPU time per parameter
  shape; most tests only need some weights, so they skip that and stay fast. Matrices get
  N(0, 1/fan-in) entries, vectors (norm scales and biases) ones.
  """
  with nnx.use_eager_sharding(False):
    abstract = nnx.eval_shape(make)
  graphdef, state = nnx.split(abstract)
  rng = np.random.default_rng(seed)

  def fill(x):
    if len(x.shape) < 2 or x.shape[-1] == 1:
      return jnp.ones(x.shape, x.dtype)
    return jnp.asarray(rng.standard_normal(x.shape) / np.sqrt(x.shape[-2]), x.dtype)

  return nnx.merge(graphdef, jax.tree.map(fill, state))


def fast_jit(fn, **kwargs):
  """jax.jit at XLA backend optimisation level 0: about half the CPU compile time, the same numerics."""
  return jax.jit(fn, compiler_options={"xla_backend_optimization_level": 0}, **kwargs)


@pytest.fixture(name="fast_jit", scope="session")
def fast_jit_fixture():
  return fast_jit


@pytest.fixture(name="tiny_config", scope="session")
def tiny_config_fixture():
  return tiny_config


@pytest.fixture(name="materialize", scope="session")
def materialize_fixture():
  return materialize
