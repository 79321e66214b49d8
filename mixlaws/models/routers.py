"""MoE routers as pure functions of float32 router logits: which token meets which expert, with what weight.

Two routing shapes come out of here, each with the router statistics and auxiliary losses:
- `TokenRouting` (token choice, switch): every token picks P experts; each expert buffers at most
  C assignments, filled in priority order (pick rank, then position, then sequence), the rest drop.
- `ExpertRouting` (expert choice, discrete mixture of tokens): within each group of tokens every
  expert picks its quota of tokens, so buffers are always exactly full and nothing overflows.
Continuous mixture of tokens routes no token at all: `mixture_weights` gives its merge weights.

Groups for expert choice and mixture of tokens hold `group_size` sequences at one position
(Krajewski et al. 2024 App. A; llm-random `group_by_batch`): a token only meets tokens of other
sequences at the same position, so no token sees its own sequence's future.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.scipy.special import entr


@functools.partial(
  jax.tree_util.register_dataclass,
  data_fields=["expert_btp", "weight_btp", "position_btp", "keep_btp"],
  meta_fields=["capacity"],
)
@dataclasses.dataclass(frozen=True)
class TokenRouting:
  """Token choice: each token's P expert picks, their weights, and their slots in C-slot expert buffers."""

  expert_btp: jax.Array  # (B, T, P) int32: chosen experts
  weight_btp: jax.Array  # (B, T, P) float32: combine weights
  position_btp: jax.Array  # (B, T, P) int32: slot in the expert's buffer, in priority order
  keep_btp: jax.Array  # (B, T, P) bool: position < capacity
  capacity: int


@functools.partial(
  jax.tree_util.register_dataclass, data_fields=["pick_nteq", "weight_nteq"], meta_fields=["group_size"]
)
@dataclasses.dataclass(frozen=True)
class ExpertRouting:
  """Expert choice: in each of the N·T groups (N sequence groups × T positions) every expert picks Q tokens."""

  pick_nteq: jax.Array  # (N, T, E, Q) int32: picked token's index within its group of G sequences
  weight_nteq: jax.Array  # (N, T, E, Q) float32: combine weights
  group_size: int

  @property
  def token_ec(self) -> jax.Array:
    """(E, C) flat token index b·T + t of each expert's C = N·T·Q picks."""
    n, t, e, q = self.pick_nteq.shape
    sequence_nteq = jnp.arange(n, dtype=jnp.int32)[:, None, None, None] * self.group_size + self.pick_nteq
    token_nteq = sequence_nteq * t + jnp.arange(t, dtype=jnp.int32)[None, :, None, None]
    return jnp.transpose(token_nteq, (2, 0, 1, 3)).reshape(e, n * t * q)

  @property
  def weight_ec(self) -> jax.Array:
    n, t, e, q = self.weight_nteq.shape
    return jnp.transpose(self.weight_nteq, (2, 0, 1, 3)).reshape(e, n * t * q)


def capacity(n_tokens: int, top_k: int, n_experts: int, factor: float) -> int:
  """Slots per expert: cf · tokens · top_k / n_experts (llm-random TokenGating); factor 0 → every token fits."""
  if factor == 0:
    return n_tokens  # a top-k pick names an expert at most once per token
  return max(1, min(int(factor * n_tokens * top_k / n_experts), n_tokens))


def expert_quota(group_size: int, granularity: int, n_experts: int) -> int:
  """Tokens each expert takes per group: round(G / n_experts · group_size) (llm-random topk_fraction)."""
  quota = round(granularity / n_experts * group_size)
  if quota < 1:
    raise ValueError(
      f"moe.group_size: expert choice gives each of {n_experts} experts round({granularity}/{n_experts} · "
      f"{group_size}) = 0 tokens per group; use a group of at least {-(-n_experts // (2 * granularity))} sequences"
    )
  return quota


def output_scale(rule: str, router: str, n_experts: int, top_k: int, granularity: int) -> float:
  """Factor on the routed experts' combined output (moe.output_scale).

  probability: 1, the router probabilities as they are (llm-random moe_layers/token_choice.py L85 and
  expert_choice.py L102 `merge(..., topk_values, ...)`). unit_mean: the reciprocal of the expected
  sum of a token's combine weights under a uniform router, so the MoE branch starts as large as a dense
  FFN: a token choice token keeps top_k picks of weight 1/(E·G) each → × E·G/top_k; an expert choice
  token is picked G times on average (quota · E·G / group) with weight 1/(E·G) → × E. Mixture of tokens
  is left at 1: its merge and emit weights are softmaxes over the group, not over the experts.
  """
  if rule == "probability" or router == "mixture_of_tokens":
    return 1.0
  if router in ("token_choice", "switch"):
    return n_experts / top_k
  return n_experts / granularity


def z_loss(logits: jax.Array, axis: int = -1) -> jax.Array:
  """Router z-loss: mean of logsumexp(logits)² (Zoph et al. 2022, Eq. 5; llm-random calculate_z_loss)."""
  return jnp.mean(jax.nn.logsumexp(logits, axis=axis) ** 2)


def entropy(probs: jax.Array, axis: int = -1) -> jax.Array:
  """Mean entropy (nats) of the routing distributions along `axis`."""
  return jnp.mean(jnp.sum(entr(probs), axis=axis))


def load_balance_loss(probs_se: jax.Array, counts_e: jax.Array) -> jax.Array:
  """Switch load-balancing loss n_experts · Σ_e mean_s(p_se) · count_e / S (Fedus et al. 2022, Eq. 4; llm-random).

  count_e counts every top-k pick, as in llm-random, so a perfectly uniform router gives top_k.
  """
  n_tokens, n_experts = probs_se.shape
  return n_experts * jnp.sum(jnp.mean(probs_se, axis=0) * counts_e) / n_tokens


def coefficient_of_variation(counts_e: jax.Array) -> jax.Array:
  return jnp.std(counts_e) / jnp.maximum(jnp.mean(counts_e), 1e-9)


def priority_positions(expert_btp: jax.Array, n_experts: int) -> jax.Array:
  """Each pick's 0-based slot in its expert's buffer, ranking picks by (pick rank, position, sequence).

  First picks come before second picks (GShard, Lepikhin et al. 2020, Algorithm 1), and earlier positions
  before later ones, so whether a token is dropped never depends on a later position. Written with a
  stable sort rather than a (picks × experts) one-hot cumsum, whose memory grows with E · P · tokens.
  """
  b, t, p = expert_btp.shape
  expert_a = jnp.transpose(expert_btp, (2, 1, 0)).reshape(-1)  # a = rank·T·B + position·B + sequence
  order_a = jnp.argsort(expert_a, stable=True)
  counts_e = jnp.bincount(expert_a, length=n_experts)
  starts_e = jnp.cumsum(counts_e) - counts_e
  slot_sorted_a = jnp.arange(expert_a.size, dtype=jnp.int32) - starts_e[expert_a[order_a]].astype(jnp.int32)
  slot_a = jnp.zeros_like(slot_sorted_a).at[order_a].set(slot_sorted_a, unique_indices=True)
  return jnp.transpose(slot_a.reshape(p, t, b), (2, 1, 0))


def token_choice(
  logits_bte: jax.Array,
  top_k: int,
  capacity: int,
  softmax_order: str = "before_topk",
  renormalize: bool = False,
) -> tuple[TokenRouting, dict[str, jax.Array]]:
  """Top-k token choice (switch is top_k = 1, softmax before top-k, no renormalisation).

  before_topk: weights are the softmax probabilities of the picks (llm-random TokenGating), optionally
  rescaled to sum to one; after_topk: a softmax over the top-k logits only (Krajewski et al. 2025).
  """
  b, t, n_experts = logits_bte.shape
  probs_bte = jax.nn.softmax(logits_bte, axis=-1)
  if softmax_order == "after_topk":
    top_logits_btp, expert_btp = jax.lax.top_k(logits_bte, top_k)
    weight_btp = jax.nn.softmax(top_logits_btp, axis=-1)
  else:
    weight_btp, expert_btp = jax.lax.top_k(probs_bte, top_k)
    if renormalize:
      weight_btp = weight_btp / jnp.sum(weight_btp, axis=-1, keepdims=True)
  position_btp = priority_positions(expert_btp, n_experts)
  keep_btp = position_btp < capacity
  counts_e = jnp.bincount(expert_btp.reshape(-1), length=n_experts).astype(jnp.float32)
  stats = {
    "load_balance_loss": load_balance_loss(probs_bte.reshape(b * t, n_experts), counts_e),
    "z_loss": z_loss(logits_bte),
    "dropped_frac": jnp.mean((~keep_btp).astype(jnp.float32)),
    "load_cv": coefficient_of_variation(counts_e),
    "router_entropy": entropy(probs_bte),
  }
  return TokenRouting(expert_btp, weight_btp, position_btp, keep_btp, capacity), stats


def _group(x_bt_: jax.Array, group_size: int) -> jax.Array:
  """(B, T, …) → (N, G, T, …): N groups of `group_size` sequences."""
  b = x_bt_.shape[0]
  if b % group_size:
    raise ValueError(f"moe.group_size: {group_size} sequences per routing group does not divide a batch of {b}")
  return x_bt_.reshape(b // group_size, group_size, *x_bt_.shape[1:])


def _pick_per_group(scores_ngte: jax.Array, weights_ngte: jax.Array, quota: int) -> ExpertRouting:
  """Each expert takes the `quota` highest-scoring tokens of every group (top-k over the group axis)."""
  _, pick_nteq = jax.lax.top_k(jnp.transpose(scores_ngte, (0, 2, 3, 1)), quota)
  weight_nteq = jnp.take_along_axis(jnp.transpose(weights_ngte, (0, 2, 3, 1)), pick_nteq, axis=-1)
  return ExpertRouting(pick_nteq.astype(jnp.int32), weight_nteq, scores_ngte.shape[1])


def unchosen_fraction(routing: ExpertRouting, n_tokens: int) -> jax.Array:
  """Fraction of tokens that no expert picked (they pass the MoE layer through the residual only)."""
  picks_s = jnp.zeros((n_tokens,), jnp.int32).at[routing.token_ec.reshape(-1)].add(1)
  return jnp.mean((picks_s == 0).astype(jnp.float32))


def expert_choice(logits_bte: jax.Array, group_size: int, quota: int) -> tuple[ExpertRouting, dict[str, jax.Array]]:
  """Expert choice (Zhou et al. 2022): softmax over experts per token, each expert takes its top `quota` per group.

  The softmax over experts and per-group top-k follow Krajewski et al. 2024 App. A and llm-random
  ExpertGating (softmax_over = experts, group_by_batch). Every expert fills exactly its quota, so the
  load is uniform by construction (load_cv 0) and no balancing loss is needed (0).
  """
  b, t, _ = logits_bte.shape
  probs_bte = jax.nn.softmax(logits_bte, axis=-1)
  probs_ngte = _group(probs_bte, group_size)
  routing = _pick_per_group(probs_ngte, probs_ngte, quota)
  stats = {
    "load_balance_loss": jnp.zeros(()),
    "z_loss": z_loss(logits_bte),
    "dropped_frac": unchosen_fraction(routing, b * t),
    "load_cv": jnp.zeros(()),
    "router_entropy": entropy(probs_bte),
  }
  return routing, stats


def mixture_weights(
  logits_bte: jax.Array, group_size: int, temperature: float
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mixture of tokens merge (= emit) weights: softmax over each group's tokens per expert, at temperature τ.

  Antoniak et al. 2023 §3 and llm-random ContinuousMoE (sparsity_dim 0, emit weights = merge weights).
  z-loss and entropy are taken along the group axis, the axis this router's softmax normalises.
  Nothing is dropped and every expert processes one mixed token per group (dropped_frac = load_cv = 0).
  """
  scaled_ngte = _group(logits_bte, group_size) / temperature
  merge_ngte = jax.nn.softmax(scaled_ngte, axis=1)
  stats = {
    "load_balance_loss": jnp.zeros(()),
    "z_loss": z_loss(scaled_ngte, axis=1),
    "dropped_frac": jnp.zeros(()),
    "load_cv": jnp.zeros(()),
    "router_entropy": entropy(merge_ngte, axis=1),
  }
  return merge_ngte, stats


def discrete_mixture(
  logits_bte: jax.Array, group_size: int, temperature: float
) -> tuple[ExpertRouting, dict[str, jax.Array]]:
  """Transition-tuned mixture of tokens: one-hot (argmax) merge and emit weights, i.e. expert choice of one token.

  As llm-random `use_discrete_routing`: the weights are exactly 1, so the controller gets no gradient.
  """
  b, t, _ = logits_bte.shape
  merge_ngte, stats = mixture_weights(logits_bte, group_size, temperature)
  routing = _pick_per_group(merge_ngte, jnp.ones_like(merge_ngte), 1)
  return routing, dict(stats, dropped_frac=unchosen_fraction(routing, b * t))
