"""Expert parallelism: every device routes its own tokens and sends them to the experts' owners with all-to-all.

Used by `MoE` when the mesh's `expert` axis has more than one device. Inside `jax.shard_map`:
1. route: each device routes only the tokens it holds (local routing groups, as in GShard and Switch), with
   the same router functions as one device; router statistics are then made global (`global_stats`).
2. dispatch: the same `dispatch` functions as one device fill (E, C, D) expert buffers or expert-sorted rows,
   but hand them to `RemoteExperts`, whose `batched` and `ragged` move the rows to the devices that own the
   experts and back:
   - capacity buffers (einsum, gather; expert choice; mixture of tokens): `jax.lax.all_to_all` of (E, C, D)
     into (E/X, X·C, D) on each owner (`to_owners` / `from_owners`);
   - dropless rows (ragged): a ragged all-to-all (`RaggedRoute`, `send_rows` / `return_rows`), then
     `jax.lax.ragged_dot` per local expert.
3. combine: the dispatch function sums each token's expert outputs back, on the device that routed it.

Expert weights arrive split over the expert axis and, where the parameter rules say so, over the mesh axes
that also split the tokens (FSDP); each device all-gathers those dimensions of its own experts
(`expert_spec`, `gather_weight`). A dimension split over the tensor axis is gathered by `jit` before.

Dropless rows are received into a buffer sized for the worst case (X · A rows: every row of every
device bound for one owner), as a static shape must be; on CPU a dense all_to_all of zero-padded blocks
stands in for the ragged all-to-all, into the same layout.

Local routing changes what drops under a capacity: capacity is C = cf · S_local · P / E per device, and
priority is decided among one device's tokens. Dropless routing, expert choice and mixture of tokens give
exactly the one-device result as long as each device holds whole routing groups.

Following MaxText's layers/moe.py (route → permute → expert matmul → unpermute), but with the bookkeeping
in small pure functions and `RaggedRoute` holding what is needed to undo the ragged all-to-all.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, PartitionSpec

from mixlaws import sharding
from mixlaws.config import MeshConfig
from mixlaws.models import grouped_matmul, routers
from mixlaws.models.layers import Experts

EXPERT_AXIS = "expert"
ragged_all_to_all = jax.lax.ragged_all_to_all  # a module attribute, so CPU tests can put a stand-in here


def ragged_collectives() -> bool:
  """Whether the target platform runs `ragged_all_to_all`: XLA:CPU has no such op (TPU and GPU do)."""
  return grouped_matmul.platform() != "cpu"


def expert_mesh() -> tuple[Mesh, sharding.Rules, sharding.Rules] | None:
  """The active (mesh, activation rules, parameter rules) when the expert axis has several devices, else None."""
  active = sharding.active()
  if active is None or active[0].shape.get(EXPERT_AXIS, 1) == 1:
    return None
  mesh, rules, param_rules = active
  return mesh, rules, param_rules if param_rules is not None else MeshConfig().param_rules


def _axes(entry) -> tuple[str, ...]:
  """The mesh axes one PartitionSpec entry names."""
  return () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)


# Capacity buffers -------------------------------------------------------------------------------


def to_owners(x_ec_: jax.Array, axis: str = EXPERT_AXIS) -> jax.Array:
  """(E, C, …) buffers for all experts → (E/X, X·C, …) for this device's experts, source-major slots."""
  return jax.lax.all_to_all(x_ec_, axis, split_axis=0, concat_axis=1, tiled=True)


def from_owners(y_lc_: jax.Array, axis: str = EXPERT_AXIS) -> jax.Array:
  """The inverse of `to_owners`: (E/X, X·C, …) → (E, C, …) back on the devices whose tokens they are."""
  return jax.lax.all_to_all(y_lc_, axis, split_axis=1, concat_axis=0, tiled=True)


# Dropless rows ----------------------------------------------------------------------------------


@functools.partial(
  jax.tree_util.register_dataclass,
  data_fields=["send_sizes_x", "send_offsets_x", "recv_sizes_x", "return_offsets_x", "order_r", "group_sizes_l"],
  meta_fields=["rows"],
)
@dataclasses.dataclass(frozen=True)
class RaggedRoute:
  """What one device needs to send its expert-sorted rows to their owners and bring the outputs back.

  Every device receives into X blocks of `rows` rows, block i from device i (rows past its size are zero),
  so the receive buffer has room for the worst case: every row of every device bound for one owner.
  """

  send_sizes_x: jax.Array  # (X,) rows this device sends to owner j
  send_offsets_x: jax.Array  # (X,) first of those rows in this device's expert-sorted rows
  recv_sizes_x: jax.Array  # (X,) rows owner-side block i holds, from device i
  return_offsets_x: jax.Array  # (X,) where this device's rows start among device i's sorted rows
  order_r: jax.Array  # (X·rows,) received rows sorted by local expert (padding rows last)
  group_sizes_l: jax.Array  # (E/X,) received rows per local expert
  rows: int  # rows per device (A)


def plan_ragged(group_sizes_e: jax.Array, rows: int, axis: str = EXPERT_AXIS) -> RaggedRoute:
  """The ragged all-to-all plan for A = `rows` expert-sorted rows with `group_sizes_e` rows per global expert."""
  n_shards = jax.lax.axis_size(axis)
  me = jax.lax.axis_index(axis)
  n_local = group_sizes_e.shape[0] // n_shards
  sizes_xl = group_sizes_e.reshape(n_shards, n_local)
  send_sizes_x = jnp.sum(sizes_xl, axis=1)
  send_offsets_x = jnp.cumsum(send_sizes_x) - send_sizes_x
  all_sizes_ie = jax.lax.all_gather(group_sizes_e, axis)  # (source, global expert)
  mine_il = jax.lax.dynamic_slice_in_dim(all_sizes_ie, me * n_local, n_local, axis=1)
  all_offsets_ij = jax.lax.all_gather(send_offsets_x, axis)  # (source, owner)
  # Block i holds device i's rows for my experts in expert order, then padding: label each row's local expert.
  ends_il = jnp.cumsum(mine_il, axis=1)
  slot_r = jnp.arange(rows, dtype=jnp.int32)
  expert_ir = jax.vmap(lambda ends_l: jnp.searchsorted(ends_l, slot_r, side="right", method="compare_all"))(
    ends_il
  )  # n_local: padding
  return RaggedRoute(
    send_sizes_x=send_sizes_x,
    send_offsets_x=send_offsets_x,
    recv_sizes_x=jnp.sum(mine_il, axis=1),
    return_offsets_x=all_offsets_ij[:, me],
    order_r=jnp.argsort(expert_ir.reshape(-1), stable=True).astype(jnp.int32),
    group_sizes_l=jnp.sum(mine_il, axis=0).astype(jnp.int32),
    rows=rows,
  )


def _owner_of_rows(route: RaggedRoute) -> jax.Array:
  """(A,) the owner each sorted row goes to (X past the last sent row)."""
  ends_x = jnp.cumsum(route.send_sizes_x)
  return jnp.searchsorted(ends_x, jnp.arange(route.rows, dtype=jnp.int32), side="right", method="compare_all")


def send_rows(x_ad: jax.Array, route: RaggedRoute, axis: str = EXPERT_AXIS, ragged: bool = True) -> jax.Array:
  """(A, D) expert-sorted rows → (X·A, D) received rows, block i from device i.

  `ragged` uses `jax.lax.ragged_all_to_all`, which moves only the real rows; XLA:CPU has no ragged
  all-to-all, so there a dense `all_to_all` moves zero-padded blocks of A rows into the same layout.
  """
  n_shards, a = route.send_sizes_x.shape[0], route.rows
  if ragged:
    out = jnp.zeros((n_shards * a, x_ad.shape[1]), x_ad.dtype)
    at_x = jnp.full((n_shards,), jax.lax.axis_index(axis) * a, jnp.int32)
    return ragged_all_to_all(
      x_ad, out, route.send_offsets_x, route.send_sizes_x, at_x, route.recv_sizes_x, axis_name=axis
    )
  slot_r = jnp.arange(a, dtype=jnp.int32)
  src_xr = jnp.where(slot_r < route.send_sizes_x[:, None], route.send_offsets_x[:, None] + slot_r, a)
  blocks_xrd = jnp.concatenate([x_ad, jnp.zeros((1, x_ad.shape[1]), x_ad.dtype)])[src_xr.reshape(-1)]
  return jax.lax.all_to_all(blocks_xrd, axis, split_axis=0, concat_axis=0, tiled=True)


def return_rows(y_rd: jax.Array, route: RaggedRoute, axis: str = EXPERT_AXIS, ragged: bool = True) -> jax.Array:
  """The inverse of `send_rows`: (X·A, D) outputs on the owners → (A, D) in this device's sorted row order."""
  n_shards, a = route.send_sizes_x.shape[0], route.rows
  if ragged:
    out = jnp.zeros((a, y_rd.shape[1]), y_rd.dtype)
    from_x = jnp.arange(n_shards, dtype=jnp.int32) * a
    return ragged_all_to_all(
      y_rd, out, from_x, route.recv_sizes_x, route.return_offsets_x, route.send_sizes_x, axis_name=axis
    )
  back_rd = jax.lax.all_to_all(y_rd, axis, split_axis=0, concat_axis=0, tiled=True)  # block j from owner j
  owner_a = _owner_of_rows(route)
  start_a = jnp.where(owner_a < n_shards, route.send_offsets_x[jnp.minimum(owner_a, n_shards - 1)], 0)
  src_a = jnp.where(owner_a < n_shards, owner_a * a + jnp.arange(a) - start_a, n_shards * a)
  return jnp.concatenate([back_rd, jnp.zeros((1, y_rd.shape[1]), y_rd.dtype)])[src_a]


# The experts, seen from the devices that route tokens ------------------------------------------


@dataclasses.dataclass(frozen=True)
class RemoteExperts:
  """`Experts.batched` and `Experts.ragged` for all E experts, of which this device holds E/X (`local`).

  The `dispatch` functions take it in place of `Experts`, so one-device and expert-parallel dispatch share code.
  """

  local: Experts
  n_experts: int
  axis: str = EXPERT_AXIS
  ragged_collectives: bool = True  # False: dense all_to_all of padded blocks (XLA:CPU has no ragged all-to-all)

  def batched(self, x_ecd: jax.Array, weight_ec: jax.Array | None = None) -> jax.Array:
    weight_lc = None if weight_ec is None else to_owners(weight_ec, self.axis)
    return from_owners(self.local.batched(to_owners(x_ecd, self.axis), weight_lc), self.axis)

  def ragged(self, x_ad: jax.Array, group_sizes_e: jax.Array) -> jax.Array:
    route = plan_ragged(group_sizes_e, x_ad.shape[0], self.axis)
    x_rd = send_rows(x_ad, route, self.axis, self.ragged_collectives)
    y_sorted_rd = self.local.ragged(x_rd[route.order_r], route.group_sizes_l)  # padding rows come out zero
    y_rd = jnp.zeros_like(y_sorted_rd).at[route.order_r].set(y_sorted_rd, unique_indices=True)
    return return_rows(y_rd, route, self.axis, self.ragged_collectives)


def gather_weight(w: jax.Array, spec: PartitionSpec) -> jax.Array:
  """All-gathers every dimension of a local weight block except the first (the expert axis)."""
  for dim, entry in enumerate(spec):
    if dim > 0 and _axes(entry):
      w = jax.lax.all_gather(w, _axes(entry), axis=dim, tiled=True)
  return w


def expert_spec(variable: nnx.Variable, param_rules: sharding.Rules, token_axes: tuple[str, ...]) -> PartitionSpec:
  """How an expert weight enters `shard_map`: experts over the expert axis, other dimensions split only over
  the mesh axes that also split the tokens (FSDP), as the parameter rules say; `gather_weight` undoes those.

  A dimension the rules split over any other axis (tensor) enters whole: `jit` gathers it before the
  `shard_map`, so the experts' outputs stay identical across that axis, as the tokens are.
  """
  names = sharding.logical_axes(variable)
  spec = sharding.logical_to_spec(names[1:], param_rules)
  rest = [tuple(a for a in _axes(entry) if a in token_axes and a != EXPERT_AXIS) for entry in spec]
  return PartitionSpec(EXPERT_AXIS, *(None if not kept else kept[0] if len(kept) == 1 else kept for kept in rest))


# Router statistics ------------------------------------------------------------------------------


def global_stats(
  stats: dict[str, jax.Array], routing, logits_bte: jax.Array, token_axes: tuple[str, ...]
) -> dict[str, jax.Array]:
  """One device's router statistics → those of the whole batch, as one device routing it would report.

  Means over tokens are means of the equal-sized shards' means. The load-balancing loss and load_cv are
  functions of the whole batch's mean probabilities and pick counts, so they are recomputed from those.
  """
  stats = {k: jax.lax.pmean(v, token_axes) for k, v in stats.items()}
  if isinstance(routing, routers.TokenRouting):
    n_experts = logits_bte.shape[-1]
    mean_probs_e = jax.lax.pmean(jnp.mean(jax.nn.softmax(logits_bte, axis=-1), axis=(0, 1)), token_axes)
    counts_e = jnp.bincount(routing.expert_btp.reshape(-1), length=n_experts).astype(jnp.float32)
    counts_e = jax.lax.psum(counts_e, token_axes)
    n_tokens = jax.lax.psum(logits_bte.shape[0] * logits_bte.shape[1], token_axes)
    stats["load_balance_loss"] = routers.load_balance_loss(mean_probs_e[None], counts_e / n_tokens)
    stats["load_cv"] = routers.coefficient_of_variation(counts_e)
  return stats


# The layer --------------------------------------------------------------------------------------


def apply(
  x_btd: jax.Array,
  logits_bte: jax.Array,
  experts: Experts,
  route: Callable,
  dispatch: Callable,
  group_size: int = 1,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The routed part of an MoE layer under expert parallelism: (B, T, D) → (B·T, D) and global statistics.

  `route(logits_bte) → (routing, stats)` and `dispatch(x_sd, routing, experts) → y_sd` are the one-device
  functions; they run per device on its tokens. `group_size` is the routers' group of sequences
  (expert choice, mixture of tokens), which each device must hold whole.
  """
  mesh, rules, param_rules = expert_mesh()
  n_experts, n_shards = experts.n_experts, mesh.shape[EXPERT_AXIS]
  if n_experts % n_shards:
    raise ValueError(f"mesh.expert: {n_experts} experts (E·G) do not split evenly over {n_shards} devices")
  token_axes = _axes(sharding.logical_to_spec(("batch",), rules)[0])
  local_batch = x_btd.shape[0] // math.prod(mesh.shape[a] for a in token_axes)
  if local_batch % group_size:
    raise ValueError(
      f"moe.group_size: expert parallelism routes each device's {local_batch} sequences on their own, "
      f"which is not a multiple of the routing group of {group_size} sequences"
    )
  graphdef, state = nnx.split(experts)
  specs = jax.tree.map(
    lambda v: expert_spec(v, param_rules, token_axes), state, is_leaf=lambda v: isinstance(v, nnx.Variable)
  )
  batch_spec = PartitionSpec(token_axes or None)
  use_ragged = ragged_collectives()

  def local(x_btd, logits_bte, state):
    with sharding.unconstrained():
      flat_specs = jax.tree.leaves(specs, is_leaf=lambda s: isinstance(s, PartitionSpec))
      leaves, treedef = jax.tree.flatten(state)
      state = jax.tree.unflatten(treedef, [gather_weight(w, s) for w, s in zip(leaves, flat_specs, strict=True)])
      remote = RemoteExperts(nnx.merge(graphdef, state), n_experts, EXPERT_AXIS, use_ragged)
      b, t, d = x_btd.shape
      routing, stats = route(logits_bte)
      y_sd = dispatch(x_btd.reshape(b * t, d), routing, remote)
      return y_sd.reshape(b, t, d), global_stats(stats, routing, logits_bte, token_axes)

  y_btd, stats = jax.shard_map(
    local,
    mesh=mesh,
    in_specs=(batch_spec, batch_spec, specs),
    out_specs=(batch_spec, PartitionSpec()),
  )(x_btd, logits_bte, state)
  return y_btd.reshape(-1, y_btd.shape[-1]), stats
