"""Compute-optimal allocation under a FLOPs budget, per law and its counting convention.

- Chinchilla form: closed-form N*, D* for F = 6ND (Hoffmann et al. 2022, Eq. 4).
- Krajewski et al. 2024: (N, D, G) under Eq. 10 with the router's cost, d_model = 64·n_blocks; a
  bounded Brent search over N_act per power-of-two G (§5, PAPERS.md §1.5).
- Ludziejewski et al. 2025: (N_act, D) per E in closed form with magnitudes of μ, ν (Eq. 7, the
  sign pitfall of PAPERS.md §2.3), and numerically under a memory cap on N_total (+ KV cache) or
  with inference FLOPs charged to the budget (§4, PAPERS.md §2.4).
- Dense-vs-MoE compute multipliers: the dense compute that matches an MoE's optimal loss.

Parameter and FLOP counts come from `mixlaws.counting` (`Shape.paper`, `convention_count`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import scipy.optimize

from mixlaws import counting
from mixlaws.fit import laws

_LN_N_RANGE = (math.log(1e5), math.log(1e16))  # search range of ln N_act


@dataclasses.dataclass(frozen=True)
class Allocation:
  """One compute-optimal configuration."""

  flops: float
  params: float  # the law's N (total non-embedding for Krajewski et al., N_act for Ludziejewski et al.)
  active_params: float
  tokens: float
  loss: float
  experts: float = 1
  granularity: int = 1
  params_total: float | None = None  # total parameters (Ludziejewski et al. Eq. 9)
  memory_bytes: float | None = None
  constrained: bool = False  # the memory or inference constraint binds


# --- Chinchilla ----------------------------------------------------------------------------


def chinchilla(params: Mapping[str, float], flops: float, flops_per_param_token: float = 6.0) -> Allocation:
  """N* = G·(C/6)^(β/(α+β)), G = (αA/(βB))^(1/(α+β)), D* = C/(6N*) (Hoffmann et al. 2022, Eq. 4)."""
  a, alpha, b, beta = params["A"], params["alpha"], params["B"], params["beta"]
  g = (alpha * a / (beta * b)) ** (1 / (alpha + beta))
  n = g * (flops / flops_per_param_token) ** (beta / (alpha + beta))
  d = flops / (flops_per_param_token * n)
  loss = params["E"] + a / n**alpha + b / d**beta
  return Allocation(flops, n, n, d, loss)


# --- Krajewski et al. 2024 -----------------------------------------------------------------


def _krajewski_shape(active_params: float, expansion_rate: int, granularity: int) -> counting.Shape:
  # §1.5: N_act = 12·d²·n with d = 64·n; every block MoE.
  n = counting.blocks_for_active_params(active_params)
  return counting.Shape.paper(64 * n, n, expansion_rate=expansion_rate, granularity=granularity)


def krajewski_at(params: Mapping[str, float], flops: float, expansion_rate: int, granularity: int) -> Allocation:
  """The best N_act for one G under the Eq. 10 budget (Brent's method over ln N_act)."""

  def evaluate(ln_n_act: float) -> Allocation:
    shape = _krajewski_shape(math.exp(ln_n_act), expansion_rate, granularity)
    count = counting.convention_count(shape, "krajewski2024")
    tokens = flops / count.flops_per_token
    loss = params["c"] + (params["g"] / granularity ** params["gamma"] + params["a"]) / count.params ** params["alpha"]
    loss += params["b"] / tokens ** params["beta"]
    return Allocation(flops, count.params, count.active_params, tokens, loss, expansion_rate, granularity)

  res = scipy.optimize.minimize_scalar(
    lambda x: evaluate(x).loss, bounds=_LN_N_RANGE, method="bounded", options={"xatol": 1e-10}
  )
  return evaluate(res.x)


def krajewski(
  params: Mapping[str, float],
  flops: float,
  expansion_rate: int = 64,
  granularities: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128),
) -> Allocation:
  """Compute-optimal (N, D, G) for the fine-grained law (Krajewski et al. 2024, §5, Table 2)."""
  return min((krajewski_at(params, flops, expansion_rate, g) for g in granularities), key=lambda a: a.loss)


# --- Ludziejewski et al. 2025 --------------------------------------------------------------


def joint_loss(params: Mapping[str, float], active_params: float, tokens: float, experts: float) -> float:
  """The joint law with printed (Table 3) signs (Ludziejewski et al. 2025, Eq. 1)."""
  per = laws.ludziejewski_per_experts(params, experts)
  return per["m"] * active_params ** per["mu"] + per["n"] * tokens ** per["nu"] + per["c"]


def joint(params: Mapping[str, float], flops: float, experts: float, vocab_size: int = 50257) -> Allocation:
  """Closed-form (N_act, D) at fixed E for F = 6·N_act·D, with |μ|, |ν| (Ludziejewski et al. 2025, Eq. 7).

  N_total is that of the Appendix A shape with this N_act (Eq. 9).
  """
  per = laws.ludziejewski_per_experts(params, experts)
  m, mu, n, nu = per["m"], -per["mu"], per["n"], -per["nu"]  # magnitudes: the printed μ, ν are negative
  g = (mu * m / (nu * n)) ** (1 / (mu + nu))
  n_act = g * (flops / 6) ** (nu / (mu + nu))
  tokens = flops / (6 * n_act)
  n_total = counting.convention_count(_ludziejewski_shape(n_act, experts, vocab_size), "ludziejewski2025").params
  return Allocation(flops, n_act, n_act, tokens, joint_loss(params, n_act, tokens, experts), experts,
                    params_total=n_total)  # fmt: skip


def _ludziejewski_shape(active_params: float, experts: int, vocab_size: int) -> counting.Shape:
  """The Appendix A shape with N_act = 2·d·V + 13·n·d² and n_blocks = d/64 (Eq. 10)."""
  count = lambda d: (
    counting.convention_count(  # noqa: E731
      counting.Shape.paper(d, d / 64, expansion_rate=experts, ffn="swiglu3", vocab_size=vocab_size), "ludziejewski2025"
    ).active_params
  )
  d = scipy.optimize.brentq(lambda d: count(d) - active_params, 1e-3, 1e7, xtol=1e-12, rtol=1e-14)
  return counting.Shape.paper(d, d / 64, expansion_rate=experts, ffn="swiglu3", vocab_size=vocab_size)


def _memory(shape: counting.Shape, kv_tokens: float, bytes_per_value: float) -> tuple[float, float]:
  """(N_total, bytes): weights plus an MHA KV cache of 2·T·n_blocks·d_model values (§4, PAPERS.md §2.4)."""
  n_total = counting.convention_count(shape, "ludziejewski2025").params
  return n_total, bytes_per_value * (n_total + 2 * kv_tokens * shape.n_layers * shape.d_model)


def constrained(
  params: Mapping[str, float],
  flops: float,
  experts: int,
  *,
  memory_bytes: float | None = None,
  kv_tokens: float = 0.0,
  inference_tokens: float = 0.0,
  bytes_per_value: float = 2.0,
  vocab_size: int = 50257,
) -> Allocation:
  """Best N_act at fixed E under F = 6·N_act·D + 2·N_act·D_inf and bytes(N_total + KV) ≤ memory.

  The loss along the budget is unimodal in ln N_act, so a bounded Brent search between the
  smallest model and the largest the constraints allow finds the optimum.
  """
  hi = _LN_N_RANGE[1]
  if inference_tokens:
    # Training tokens must stay positive: N_act < F / (2·D_inf).
    hi = min(hi, math.log(flops / (2 * inference_tokens)) - 1e-9)
  if memory_bytes is not None:

    def excess(ln_n: float) -> float:
      return (
        _memory(_ludziejewski_shape(math.exp(ln_n), experts, vocab_size), kv_tokens, bytes_per_value)[1] - memory_bytes
      )

    if excess(_LN_N_RANGE[0]) >= 0:
      raise ValueError(
        f"memory: {memory_bytes:.3g} bytes cannot hold even a {math.exp(_LN_N_RANGE[0]):.0e}-parameter model"
      )
    if excess(hi) > 0:
      hi = scipy.optimize.brentq(excess, _LN_N_RANGE[0], hi, xtol=1e-12)
  if hi <= _LN_N_RANGE[0]:
    raise ValueError(f"inference_tokens: {inference_tokens:.3g} leaves no training compute within {flops:.3g} FLOPs")

  def tokens_for(n_act: float) -> float:
    return (flops - 2 * n_act * inference_tokens) / (6 * n_act)

  res = scipy.optimize.minimize_scalar(
    lambda x: joint_loss(params, math.exp(x), tokens_for(math.exp(x)), experts),
    bounds=(_LN_N_RANGE[0], hi),
    method="bounded",
    options={"xatol": 1e-10},
  )
  n_act = math.exp(res.x)
  shape = _ludziejewski_shape(n_act, experts, vocab_size)
  n_total, used = _memory(shape, kv_tokens, bytes_per_value)
  free = joint(params, flops, experts, vocab_size) if not inference_tokens else None
  binding = res.x > hi - 1e-6 or (free is not None and abs(free.active_params / n_act - 1) > 1e-6)
  tokens = tokens_for(n_act)
  return Allocation(
    flops,
    n_act,
    n_act,
    tokens,
    joint_loss(params, n_act, tokens, experts),
    experts,
    params_total=n_total,
    memory_bytes=used,
    constrained=bool(binding),
  )


def best_experts(
  params: Mapping[str, float], flops: float, experts: Sequence[int] = (1, 2, 4, 8, 16, 32), **constraints
) -> tuple[Allocation, list[Allocation]]:
  """The E (from `experts`) with the lowest constrained-optimal loss, and every E's allocation."""
  table = [constrained(params, flops, e, **constraints) for e in experts]
  return min(table, key=lambda a: a.loss), table


# --- compute multipliers -------------------------------------------------------------------


def compute_multiplier(target_loss: float, loss_at: Callable[[float], float], flops: float) -> float:
  """F'/F where `loss_at(F')`, an optimal loss decreasing in compute, equals `target_loss`."""
  f = lambda ln_f: loss_at(math.exp(ln_f)) - target_loss  # noqa: E731
  lo, hi = math.log(flops) - 10, math.log(flops) + 20
  if f(lo) < 0 or f(hi) > 0:
    raise ValueError(
      f"target_loss: {target_loss:.4f} is not reached within [{math.exp(lo):.3g}, {math.exp(hi):.3g}] FLOPs"
    )
  return math.exp(scipy.optimize.brentq(f, lo, hi, xtol=1e-12)) / flops


def krajewski_multiplier(
  moe: Mapping[str, float], dense: Mapping[str, float], flops: float, expansion_rate: int = 64
) -> float:
  """Dense compute (F = 6ND, N = 12·d²·n) matching the compute-optimal MoE's loss at `flops` (§1.8)."""
  target = krajewski(moe, flops, expansion_rate).loss
  return compute_multiplier(target, lambda f: chinchilla(dense, f).loss, flops)


def joint_multiplier(params: Mapping[str, float], flops: float, experts: float) -> float:
  """Dense (E = 1) compute matching the compute-optimal E-expert MoE's loss at `flops`."""
  target = joint(params, flops, experts).loss
  return compute_multiplier(target, lambda f: joint(params, f, 1).loss, flops)


# --- Wang et al. 2024, Clark et al. 2022, compute and downstream laws ------------------------


def wang(params: Mapping[str, float], flops: float, experts: float) -> Allocation:
  """(N_act, D) at fixed E for F = 6·N_act·D: Chinchilla's closed form with A' = A/E^γ (Wang et al. 2024, Eq. 5)."""
  chin = {"A": params["A"] / experts ** params["gamma"], "alpha": params["alpha"], "B": params["B"],
          "beta": params["beta"], "E": params["sigma"]}  # fmt: skip
  a = chinchilla(chin, flops)
  return dataclasses.replace(a, experts=experts)


def gadre(params: Mapping[str, float], flops: float) -> Allocation:
  """(N, D) for F = 6ND under tied exponents: Chinchilla's closed form with α = β = η (Gadre et al. 2024, Eq. 4)."""
  p = params
  return chinchilla({"A": p["A"], "alpha": p["eta"], "B": p["B"], "beta": p["eta"], "E": p["E"]}, flops)


def clark_loss(params: Mapping[str, float], active_params: float, experts: float) -> float:
  """L(N, E) at the fit's fixed D (Clark et al. 2022): ln L = a·ln N + b·ln Ê + c·ln N·ln Ê + d."""
  p = params
  ln_n = math.log(active_params)
  le = math.log(float(laws.expert_transform(experts, p["E_start"], p["E_max"])))
  return math.exp(p["a"] * ln_n + p["b"] * le + p["c"] * ln_n * le + p["d"])


def flops_for_loss(params: Mapping[str, float], target: float) -> float:
  """C with E + A·C^−α = target (the compute law); raises when the target is at or below the floor E."""
  if not target > params["E"]:
    raise ValueError(f"--target: the law's loss never falls to {target:g} (its floor E is {params['E']:.4g})")
  return (params["A"] / (target - params["E"])) ** (1 / params["alpha"])


def neg_log_target(accuracy: float, chance: float = 0.0) -> float:
  """−ln Acc' of a target accuracy, chance-corrected as the downstream laws are fitted (arXiv 2512.08894)."""
  if not chance < accuracy <= 1:
    raise ValueError(f"--target: an accuracy must lie in (chance = {chance:g}, 1], got {accuracy:g}")
  if accuracy == 1:
    raise ValueError("--target: accuracy 1 needs infinite compute under a power law")
  return -math.log((accuracy - chance) / (1 - chance))


def downstream_flops(law: str, params: Mapping[str, float], accuracy: float, chance: float = 0.0) -> Allocation:
  """The least training compute reaching `accuracy` under a downstream law (arXiv 2512.08894).

  Eq. 2: −ln Acc = A·C^−α gives C directly; Eq. 10 (Appendix L) adds the ceiling E; Eq. 4,
  −ln Acc = A·N^−α + B·D^−β, is Chinchilla's form with no floor, so the compute-optimal (N, D)
  of F = 6ND is solved for the F whose optimum reaches the target.
  """
  y = neg_log_target(accuracy, chance)
  if law == "downstream_power":
    return Allocation((params["A"] / y) ** (1 / params["alpha"]), math.nan, math.nan, math.nan, y)
  if law == "downstream_ceiling":
    if not y > params["E"]:
      raise ValueError(
        f"--target: accuracy {accuracy:g} is above the law's ceiling {math.exp(-params['E']) * (1 - chance) + chance:.4g}"
      )
    return Allocation(flops_for_loss(params, y), math.nan, math.nan, math.nan, y)
  if law == "downstream_tpr":
    chin = {**params, "E": 0.0}
    f = lambda ln_c: math.log(chinchilla(chin, math.exp(ln_c)).loss) - math.log(y)  # noqa: E731
    ln_c = scipy.optimize.brentq(f, math.log(1e6), math.log(1e40), xtol=1e-12)
    return chinchilla(chin, math.exp(ln_c))
  raise ValueError(f"law: {law} is not a downstream law")
