"""Moving tokens to experts and back: one-hot einsum, sorted gather, and dropless ragged_dot.

All three give the same output for the same routing (up to float rounding) whenever nothing is
dropped; `einsum` and `gather` drop exactly the same picks, because both read the slots that
`routers.priority_positions` assigned. `ragged` never drops: it is the dropless path that maps to
grouped-matmul kernels on TPU and GPU. On CPU `jax.lax.ragged_dot` computes every expert on every
row, so `gather` is the fast CPU choice.

Inputs are flat tokens x_sd (S = B·T) in the compute dtype; combine weights are cast to it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mixlaws import sharding
from mixlaws.models.layers import Experts
from mixlaws.models.routers import ExpertRouting, TokenRouting


def _expert_buffers(x_ecd: jax.Array) -> jax.Array:
  """Pins (E, C, D) expert buffers to the expert mesh axis (expert parallelism); a no-op without a mesh."""
  return sharding.constrain(x_ecd, ("expert", None, "embed"))


# Token choice ---------------------------------------------------------------------------------


def tokens_einsum(x_sd: jax.Array, r: TokenRouting, experts: Experts) -> jax.Array:
  """One-hot dispatch and combine tensors of shape (S, E, C) (GShard / Switch Transformer style)."""
  s, d = x_sd.shape
  n_experts = experts.n_experts
  expert_spe = jax.nn.one_hot(r.expert_btp.reshape(s, -1), n_experts, dtype=x_sd.dtype)
  slot_spc = jax.nn.one_hot(
    jnp.where(r.keep_btp, r.position_btp, r.capacity).reshape(s, -1), r.capacity, dtype=x_sd.dtype
  )
  dispatch_sec = jnp.einsum("spe,spc->sec", expert_spe, slot_spc)  # a dropped pick's slot one-hot is all zero
  weight_sp = r.weight_btp.reshape(s, -1).astype(x_sd.dtype)
  combine_sec = jnp.einsum("spe,spc->sec", expert_spe * weight_sp[..., None], slot_spc)
  y_ecd = experts.batched(_expert_buffers(jnp.einsum("sec,sd->ecd", dispatch_sec, x_sd)))
  return jnp.einsum("sec,ecd->sd", combine_sec, y_ecd)


def _with_zero_row(x_nd: jax.Array) -> jax.Array:
  """x with a zero row appended: the row that empty slots and dropped picks read."""
  return jnp.concatenate([x_nd, jnp.zeros((1, x_nd.shape[1]), x_nd.dtype)])


# Moving tokens into slots and back are two gathers that are each other's transposes: every kept pick
# holds one slot and every filled slot one pick. Written with custom VJPs because JAX differentiates
# a gather into a scatter-add, which XLA:CPU runs single-threaded; this way the backward passes
# are gathers too.


@jax.custom_vjp
def _tokens_to_slots(x_sd: jax.Array, token_m: jax.Array, slot_sp: jax.Array) -> jax.Array:
  """(M, D) slot rows: slot m holds token token_m[m] (S: empty, a zero row)."""
  return _with_zero_row(x_sd)[token_m]


@jax.custom_vjp
def _slots_to_tokens(y_md: jax.Array, slot_sp: jax.Array, token_m: jax.Array) -> jax.Array:
  """(S, D): each token sums the slots of its P picks (M: dropped, a zero row)."""
  return jnp.sum(_with_zero_row(y_md)[slot_sp], axis=1)


def _tokens_to_slots_fwd(x_sd, token_m, slot_sp):
  return _tokens_to_slots(x_sd, token_m, slot_sp), (token_m, slot_sp)


def _tokens_to_slots_bwd(residuals, g_md):
  token_m, slot_sp = residuals
  return _slots_to_tokens(g_md, slot_sp, token_m), None, None


def _slots_to_tokens_fwd(y_md, slot_sp, token_m):
  return _slots_to_tokens(y_md, slot_sp, token_m), (slot_sp, token_m)


def _slots_to_tokens_bwd(residuals, g_sd):
  slot_sp, token_m = residuals
  return _tokens_to_slots(g_sd, token_m, slot_sp), None, None


_tokens_to_slots.defvjp(_tokens_to_slots_fwd, _tokens_to_slots_bwd)
_slots_to_tokens.defvjp(_slots_to_tokens_fwd, _slots_to_tokens_bwd)


def tokens_gather(x_sd: jax.Array, r: TokenRouting, experts: Experts) -> jax.Array:
  """Tokens gathered into (E, C) buffers by slot index, batched expert matmul, each token's slots summed back.

  The combine weights scale each slot inside the experts (`Experts.batched`), so combining is a plain sum.
  """
  s, d = x_sd.shape
  n_experts, c = experts.n_experts, r.capacity
  m = n_experts * c
  slot_sp = jnp.where(r.keep_btp, r.expert_btp * c + r.position_btp, m).reshape(s, -1)  # m: dropped
  a = slot_sp.size  # picks, flat index s·P + p
  # Slot m is a bin for dropped picks; empty slots point at pick A, past the last one.
  pick_m = jnp.full((m + 1,), a, jnp.int32).at[slot_sp.reshape(-1)].set(jnp.arange(a, dtype=jnp.int32))[:-1]
  weight_m = _with_zero_row(r.weight_btp.reshape(-1, 1))[pick_m, 0]  # empty slots: weight 0
  token_m = pick_m // slot_sp.shape[1]  # empty slots: S, the zero row
  x_ecd = _tokens_to_slots(x_sd, token_m, slot_sp).reshape(n_experts, c, d)
  y_ecd = experts.batched(_expert_buffers(x_ecd), weight_m.reshape(n_experts, c))
  return _slots_to_tokens(y_ecd.reshape(m, d), slot_sp, token_m)


def tokens_ragged(x_sd: jax.Array, r: TokenRouting, experts: Experts) -> jax.Array:
  """Picks sorted by expert, `jax.lax.ragged_dot` over the groups, unsorted back; ignores capacity (dropless)."""
  s, d = x_sd.shape
  n_experts = experts.n_experts
  expert_a = r.expert_btp.reshape(-1)
  p = expert_a.size // s
  order_a = jnp.argsort(expert_a, stable=True)
  group_sizes_e = jnp.bincount(expert_a, length=n_experts).astype(jnp.int32)
  y_sorted_ad = experts.ragged(x_sd[order_a // p], group_sizes_e)
  y_spd = jnp.zeros_like(y_sorted_ad).at[order_a].set(y_sorted_ad, unique_indices=True).reshape(s, p, d)
  return jnp.einsum("spd,sp->sd", y_spd, r.weight_btp.reshape(s, p).astype(x_sd.dtype))


# Expert choice --------------------------------------------------------------------------------


def experts_einsum(x_sd: jax.Array, r: ExpertRouting, experts: Experts) -> jax.Array:
  """One-hot dispatch within each group: (N, T, E, Q, G) tensors, so memory grows with G, not with S."""
  n, t, e, q = r.pick_nteq.shape
  g, d = r.group_size, x_sd.shape[-1]
  x_ngtd = x_sd.reshape(n, g, t, d)
  dispatch_nteqg = jax.nn.one_hot(r.pick_nteq, g, dtype=x_sd.dtype)
  x_nteqd = jnp.einsum("nteqg,ngtd->nteqd", dispatch_nteqg, x_ngtd)
  x_ecd = jnp.transpose(x_nteqd, (2, 0, 1, 3, 4)).reshape(e, n * t * q, d)
  y_ecd = experts.batched(_expert_buffers(x_ecd))
  y_nteqd = jnp.transpose(y_ecd.reshape(e, n, t, q, d), (1, 2, 0, 3, 4))
  combine_nteqg = dispatch_nteqg * r.weight_nteq[..., None].astype(x_sd.dtype)
  return jnp.einsum("nteqg,nteqd->ngtd", combine_nteqg, y_nteqd).reshape(-1, d)


def _scatter_back(y_ecd: jax.Array, r: ExpertRouting, n_tokens: int) -> jax.Array:
  """Sums each token's weighted expert outputs; a token may be picked by several experts or by none."""
  d = y_ecd.shape[-1]
  weighted_ecd = y_ecd * r.weight_ec[..., None].astype(y_ecd.dtype)
  return jnp.zeros((n_tokens, d), y_ecd.dtype).at[r.token_ec.reshape(-1)].add(weighted_ecd.reshape(-1, d))


def experts_gather(x_sd: jax.Array, r: ExpertRouting, experts: Experts) -> jax.Array:
  """Picked tokens gathered into (E, C) buffers, batched expert matmul, scatter-added back."""
  y_ecd = experts.batched(_expert_buffers(x_sd[r.token_ec]))
  return _scatter_back(y_ecd, r, x_sd.shape[0])


def experts_ragged(x_sd: jax.Array, r: ExpertRouting, experts: Experts) -> jax.Array:
  """Picked tokens in expert order through `jax.lax.ragged_dot` (every group holds exactly C rows)."""
  token_ec = r.token_ec
  e, c = token_ec.shape
  y_ad = experts.ragged(x_sd[token_ec.reshape(-1)], jnp.full((e,), c, jnp.int32))
  return _scatter_back(y_ad.reshape(e, c, -1), r, x_sd.shape[0])


# Mixture of tokens ----------------------------------------------------------------------------


def mixture(x_sd: jax.Array, merge_ngte: jax.Array, experts: Experts) -> jax.Array:
  """Each expert gets one weighted mix of its group's tokens and emits back with the same weights.

  Antoniak et al. 2023 §3 (merge, process, emit). Every token enters every mix, so this is a dense
  contraction whatever `moe.dispatch` says: there is no token to gather or sort.
  """
  n, g, t, e = merge_ngte.shape
  d = x_sd.shape[-1]
  merge_ngte = merge_ngte.astype(x_sd.dtype)
  mixed_nted = jnp.einsum("ngte,ngtd->nted", merge_ngte, x_sd.reshape(n, g, t, d))
  y_ecd = experts.batched(_expert_buffers(jnp.transpose(mixed_nted, (2, 0, 1, 3)).reshape(e, n * t, d)))
  y_nted = jnp.transpose(y_ecd.reshape(e, n, t, d), (1, 2, 0, 3))
  return jnp.einsum("ngte,nted->ngtd", merge_ngte, y_nted).reshape(-1, d)


TOKEN_DISPATCH = {"einsum": tokens_einsum, "gather": tokens_gather, "ragged": tokens_ragged}
EXPERT_DISPATCH = {"einsum": experts_einsum, "gather": experts_gather, "ragged": experts_ragged}
