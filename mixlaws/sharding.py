"""Device mesh from config, logical→mesh axis rules, and activation constraints.

Model code names only logical axes (`batch, seq, embed, mlp, heads, kv, head_dim, vocab, expert,
layers`): parameters carry them as `out_sharding` metadata (`nnx.with_partitioning`), activations
pass them to `constrain`. The config's two rule tables (`mesh.param_rules`, `mesh.activation_rules`,
one rule per name) map them to the mesh axes `data, fsdp, tensor, expert`.

We map names ourselves instead of through Flax's global rule context: an unknown logical name is
an error here, where `nnx.get_partition_spec` would silently return the logical names.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import jax
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from mixlaws.config import MESH_AXES, MeshConfig, mesh_shape

Rules = tuple[tuple[str, Any], ...]


def make_mesh(mesh_cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """The (data, fsdp, tensor, expert) mesh; one size may be -1. Axis types are explicit (Auto)."""
  devices = list(devices if devices is not None else jax.devices())
  shape = mesh_shape(mesh_cfg, len(devices))  # raises naming the mesh field when sizes do not fit
  types = (AxisType.Auto,) * len(MESH_AXES)
  try:
    return jax.make_mesh(shape, MESH_AXES, axis_types=types, devices=devices)
  except NotImplementedError:
    # jax.make_mesh maps each mesh axis onto whole physical torus axes and gives up on shapes such as
    # fsdp 8 × expert 8 on a 4x4x4 slice; splitting physical axes still gives every device one place.
    from jax.experimental import mesh_utils

    try:
      grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
    except (NotImplementedError, ValueError) as e:
      sizes = " × ".join(f"{a} {s}" for a, s in zip(MESH_AXES, shape))
      raise ValueError(f"mesh.data: cannot lay {sizes} onto the {len(devices)} devices ({e})") from None
    return Mesh(grid, MESH_AXES, axis_types=types)


VOCAB_ALIGNMENT = 128  # TPU lane width: the padded vocabulary is a multiple of it per tensor shard


def vocab_multiple(mesh_cfg: MeshConfig) -> int:
  """What the vocabulary is padded to a multiple of: 128 × the tensor axis, so `vocab` splits evenly.

  A tensor axis of -1 (its size known only from the devices) counts as 1.
  """
  return VOCAB_ALIGNMENT * max(mesh_cfg.tensor, 1)


def logical_to_spec(logical_axes: Sequence[str | None], rules: Rules) -> PartitionSpec:
  """PartitionSpec for one array; a mesh axis already used by an earlier dimension is dropped."""
  table = dict(rules)
  used: set[str] = set()
  spec = []
  for name in logical_axes:
    if name is None:
      spec.append(None)
      continue
    if name not in table:
      raise ValueError(f"logical axis {name!r} has no rule in {sorted(table)}")
    target = table[name]
    targets = target if isinstance(target, tuple) else (target,)
    kept = tuple(t for t in targets if t is not None and t not in used)
    used.update(kept)
    spec.append(None if not kept else kept[0] if len(kept) == 1 else kept)
  return PartitionSpec(*spec)


@dataclasses.dataclass(frozen=True)
class _Context:
  mesh: Mesh
  rules: Rules
  param_rules: Rules | None = None  # where parameters live, for code that reads them inside `jax.shard_map`
  constrain: bool = True  # False inside `jax.shard_map`, where every mesh axis is manual


_ACTIVE: contextvars.ContextVar[_Context | None] = contextvars.ContextVar("mixlaws_sharding", default=None)


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules: Rules, param_rules: Rules | None = None) -> Iterator[None]:
  """Within this context (while tracing), `constrain` pins activations to the mesh."""
  token = _ACTIVE.set(_Context(mesh, tuple(rules), None if param_rules is None else tuple(param_rules)))
  try:
    yield
  finally:
    _ACTIVE.reset(token)


def active() -> tuple[Mesh, Rules, Rules | None] | None:
  """(mesh, activation rules, parameter rules or None) of the enclosing `activation_sharding`, or None."""
  ctx = _ACTIVE.get()
  return None if ctx is None else (ctx.mesh, ctx.rules, ctx.param_rules)


@contextlib.contextmanager
def unconstrained() -> Iterator[None]:
  """Turns `constrain` into a no-op, e.g. inside `jax.shard_map`, where every mesh axis is manual."""
  ctx = _ACTIVE.get()
  token = _ACTIVE.set(None if ctx is None else dataclasses.replace(ctx, constrain=False))
  try:
    yield
  finally:
    _ACTIVE.reset(token)


def manual() -> bool:
  """Whether the code being traced runs inside `unconstrained` (a `jax.shard_map` body)."""
  ctx = _ACTIVE.get()
  return ctx is not None and not ctx.constrain


def constrain(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
  """Constrains an activation's sharding by logical axes; a no-op outside `activation_sharding`."""
  ctx = _ACTIVE.get()
  if ctx is None or not ctx.constrain:
    return x
  spec = logical_to_spec(logical_axes, ctx.rules)
  return jax.lax.with_sharding_constraint(x, NamedSharding(ctx.mesh, spec))


def _is_variable(x: Any) -> bool:
  return isinstance(x, nnx.Variable)


def logical_axes(variable: nnx.Variable) -> tuple[str | None, ...]:
  """The logical axis names a parameter was created with (all None when it has none)."""
  names = variable.get_metadata().get("out_sharding")
  return tuple(names) if names else (None,) * len(variable.shape)


def param_specs(state: Any, rules: Rules) -> Any:
  """A tree of PartitionSpecs for an NNX state (parameters, optimizer moments) from its metadata."""
  return jax.tree.map(lambda v: logical_to_spec(logical_axes(v), rules), state, is_leaf=_is_variable)


def param_shardings(state: Any, mesh: Mesh, rules: Rules) -> Any:
  """A tree of NamedShardings for an NNX state."""
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec), param_specs(state, rules),
                      is_leaf=lambda x: isinstance(x, PartitionSpec))  # fmt: skip
