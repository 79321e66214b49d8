"""Grouped matmul of expert-sorted rows, `jax.lax.ragged_dot` semantics, with the kernel chosen by platform.

On a single TPU chip it runs JAX's Pallas grouped-matmul kernel (megablox `gmm`, with its own custom VJP),
which skips the row tiles no group owns; elsewhere (other platforms, partitioned programs, expert-parallel
`shard_map` bodies) `jax.lax.ragged_dot`, which XLA also lowers to a grouped matmul on TPU. The platform is that of the
active mesh (so an ahead-of-time compile for a TPU topology on a CPU machine gets the TPU kernel),
else the default backend.
"""

from __future__ import annotations

import jax

from mixlaws import sharding

TILE = 128  # megablox's default tile on each of the rows, D and F


def platform() -> str:
  """The platform the code being traced will run on."""
  active = sharding.active()
  return active[0].devices.flat[0].platform if active is not None else jax.default_backend()


def _one_device_program() -> bool:
  """Megablox runs where nothing partitions it: no mesh, or a mesh of one device (Mosaic kernels cannot be
  partitioned automatically). Inside `jax.shard_map` the check of varying axes would need each Pallas
  output's axes declared, which megablox does not do; XLA's own ragged dot (on TPU too) runs there.
  """
  active = sharding.active()
  return active is None or (active[0].size == 1 and not sharding.manual())


def ragged_dot(x_ad: jax.Array, w_edf: jax.Array, group_sizes_e: jax.Array) -> jax.Array:
  """(A, D) rows, `group_sizes_e[e]` consecutive rows per group e, times (E, D, F) → (A, F); rows past the groups give 0."""
  rows, d = x_ad.shape
  f = w_edf.shape[2]
  # The kernel's blocks (also the backward's, with D and F swapped) must be multiples of 128 on every side.
  if platform() == "tpu" and rows % TILE == 0 and d % TILE == 0 and f % TILE == 0 and _one_device_program():
    from jax.experimental.pallas.ops.tpu.megablox import ops as megablox

    return megablox.gmm(x_ad, w_edf, group_sizes_e.astype("int32"), x_ad.dtype, (TILE, TILE, TILE))
  return jax.lax.ragged_dot(x_ad, w_edf, group_sizes_e)
