"""Choosing the next runs: which untrained runs of a pool most shrink a fitted law's uncertainty per FLOP.

Pure maths on arrays and DataFrames (no store, no training). The method, after the MSPE selector of
ScaleBench (arXiv 2604.22753, `mspe.py` of PlanarG/active-sl) reduced to one mode:

1. Fit the law to the observed runs: bounded least squares from several starts (`fit`).
2. Linearise around the fit (Laplace / Gauss-Newton): the posterior covariance of the parameters is
   Σ = (JᵀJ/σ² + P₀)⁻¹, J the Jacobian of the predictions at the observed runs, σ² the residual
   variance (a Bayesian estimate with an inverse-gamma prior, as `bayesian_sigma2` there) and P₀ a
   weak Gaussian prior precision from the parameter bounds (a quarter of the box per std).
3. The target's predictive variance is tr(W G Σ Gᵀ), G the gradient of the target with respect to
   the parameters: the predictions at the target points (V-optimal design, Atkinson, Donev & Tobias,
   *Optimum Experimental Designs*, §10.6), or one scalar function of the parameters such as a
   compute-optimal size or a coefficient (c-optimal design, §10.3).
4. Adding a candidate run with Jacobian row j lowers that variance by ‖W^½ G Σ j‖² / (σ² + jᵀΣj)
   (Sherman-Morrison). Candidates are ranked by that reduction per unit cost and taken greedily,
   each pick updating Σ, until K are chosen or the budget is spent.

Before there are as many runs as parameters, the linearisation has nothing to stand on; the first
runs are the cheapest ones (ScaleBench's `cheap_init`: 2.5 × parameters, within 2% of the pool).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from mixlaws.fit.laws import Law

# σ² prior of mspe.py: inverse-gamma with shape SIGMA2_A0 and scale SIGMA2_A0 × Var(y) (there over the
# whole pool; here over the observed runs, which is all a sweep has).
SIGMA2_A0 = 2.0


@dataclasses.dataclass(frozen=True)
class Space:
  """A law over a fixed pool of candidate runs: its columns, targets, costs and finite parameter box."""

  law: Law
  x: Mapping[str, np.ndarray]  # pool columns
  y: np.ndarray  # the pool's measured target (NaN where not yet run)
  cost: np.ndarray
  lo: np.ndarray  # per law.params, fitting space
  hi: np.ndarray

  @property
  def n(self) -> int:
    return len(self.cost)


def space(law: Law, pool: Mapping[str, Sequence[float]], cost: Sequence[float], box: Mapping | None = None) -> Space:
  """A `Space` from a pool (a DataFrame or dict of columns); `box` overrides the law's bounds per parameter."""
  missing = [c for c in law.columns if c not in pool]
  if missing:
    raise ValueError(f"pool: lacks column(s) {', '.join(missing)} that law {law.name} reads")
  x = {c: np.asarray(pool[c], np.float64) for c in law.columns}
  y = np.asarray(pool[law.target], np.float64) if law.target in pool else np.full(len(cost), np.nan)
  cost = np.asarray(cost, np.float64)
  if np.any(~(cost > 0)):
    raise ValueError("cost: every run needs a positive cost")
  bounds = {**law.bounds, **(box or {})}
  lo, hi = [], []
  for name in law.params:
    grid = np.asarray(law.init[name], np.float64)
    b_lo, b_hi = bounds.get(name, (None, None))
    # No finite bound: the start grid widened by its own span stands in for the box.
    span = max(float(np.ptp(grid)), 1.0)
    lo.append(b_lo if b_lo is not None else float(grid.min()) - span)
    hi.append(b_hi if b_hi is not None else float(grid.max()) + span)
  return Space(law, x, y, cost, np.array(lo), np.array(hi))


@functools.cache
def _functions(law: Law):
  """Jitted ŷ(θ, x) and ∂ŷ/∂θ for a law, θ a vector in `law.params` order."""
  predict = law.fn(log=False)

  def f(theta, x):
    return predict(dict(zip(law.params, theta)), x)

  return jax.jit(f), jax.jit(jax.jacfwd(f))


def predict(law: Law, theta: np.ndarray, x: Mapping[str, np.ndarray]) -> np.ndarray:
  """ŷ for fitting-space θ (vector in `law.params` order) at columns x."""
  f, _ = _functions(law)
  with jax.enable_x64(True):
    return np.asarray(f(jnp.asarray(theta, jnp.float64), {c: jnp.asarray(x[c], jnp.float64) for c in law.columns}))


def jacobian(law: Law, theta: np.ndarray, x: Mapping[str, np.ndarray]) -> np.ndarray:
  """∂ŷ/∂θ, one row per point."""
  _, jac = _functions(law)
  with jax.enable_x64(True):
    j = jac(jnp.asarray(theta, jnp.float64), {c: jnp.asarray(x[c], jnp.float64) for c in law.columns})
  return np.asarray(j)


def _residual_space(law: Law, y: np.ndarray) -> np.ndarray:
  return np.log(y) if law.residual == "log" else y


def fit(sp: Space, observed: np.ndarray, rng: np.random.Generator, starts: int = 8, warm: Sequence = ()) -> tuple:
  """Bounded least squares (scipy TRF) of the law on the observed runs; returns (θ, mean squared residual).

  Residuals in the law's space (linear for the ScaleBench laws, as its L-BFGS-B fitter), starts drawn
  uniformly in the box as there, plus warm starts (earlier optima).
  """
  law = sp.law
  observed = np.asarray(observed, bool)
  # Residuals over the whole pool with unobserved rows zeroed: one array shape per pool, so the jitted
  # law compiles once however many runs are observed.
  y = np.where(observed, _residual_space(law, np.where(observed, sp.y, 1.0)), 0.0)
  log = law.residual == "log"
  f, jac = _functions(law)
  with jax.enable_x64(True):
    xj = {c: jnp.asarray(v, jnp.float64) for c, v in sp.x.items()}

    def res(theta):
      pred = np.asarray(f(jnp.asarray(theta), xj))
      r = (np.log(np.maximum(pred, 1e-300)) if log else pred) - y
      return np.where(observed, np.where(np.isfinite(r), r, 1e6), 0.0)

    def dres(theta):
      j = np.asarray(jac(jnp.asarray(theta), xj))
      if log:
        j = j / np.asarray(f(jnp.asarray(theta), xj))[:, None]
      return np.where(observed[:, None] & np.isfinite(j), j, 0.0)

    points = [np.clip(np.asarray(w, np.float64), sp.lo, sp.hi) for w in warm]
    points += [sp.lo + (sp.hi - sp.lo) * rng.random(len(sp.lo)) for _ in range(starts)]
    best, best_cost = None, np.inf
    for x0 in points:
      try:
        out = scipy.optimize.least_squares(res, x0, jac=dres, bounds=(sp.lo, sp.hi), method="trf", max_nfev=200)
      except (ValueError, np.linalg.LinAlgError):
        continue
      if out.cost < best_cost:
        best, best_cost = out.x, out.cost
  if best is None:
    raise ValueError(f"fit {law.name}: no start reached a finite objective")
  return best, 2.0 * best_cost / max(int(observed.sum()), 1)


def sigma2(mse: float, n_obs: int, y_var: float) -> float:
  """Posterior-mean noise variance under the inverse-gamma prior (mspe.py `bayesian_sigma2`)."""
  b0 = SIGMA2_A0 * max(y_var, 1e-12)
  return (b0 + n_obs * mse / 2.0) / (SIGMA2_A0 + n_obs / 2.0 - 1.0)


def covariance(j_obs: np.ndarray, noise: float, prior_precision: np.ndarray) -> np.ndarray:
  """Σ = (JᵀJ/σ² + P₀)⁻¹ with eigenvalues floored so a degenerate direction stays finite."""
  h = j_obs.T @ j_obs / noise + np.diag(prior_precision)
  w, v = np.linalg.eigh(0.5 * (h + h.T))
  w = np.maximum(w, max(1e-12 * w[-1], 1e-300))
  return (v / w) @ v.T


def prior_precision(sp: Space, theta: np.ndarray) -> np.ndarray:
  """P₀: each parameter's prior std a quarter of its box, in log space for a positive box (as mspe.py),
  carried to θ's own scale at the fit (std of θ ≈ θ·std of ln θ)."""
  positive = sp.lo > 0
  std = np.where(positive, np.abs(theta) * np.log(np.where(positive, sp.hi / np.where(positive, sp.lo, 1.0), 1.0)),
                 sp.hi - sp.lo) / 4.0  # fmt: skip
  return 1.0 / np.maximum(std, 1e-300) ** 2


def greedy(
  sigma: np.ndarray,
  g: np.ndarray,
  j_cand: np.ndarray,
  cost: np.ndarray,
  noise: float,
  k: int,
  budget: float,
  weights: np.ndarray | None = None,
  cost_power: float = 1.0,
) -> tuple[list[int], list[float]]:
  """Greedy V-optimal picks per cost^cost_power among candidate rows `j_cand`; returns (indices, variance after each).

  sigma: parameter covariance; g: target gradients (one row per target quantity); weights: per target
  row (default the mean). Each pick updates Σ by Sherman-Morrison, so later picks see the earlier ones.
  cost_power 1 ranks by variance removed per FLOP; ScaleBench's MSPE divides by cost^0.4 (COST_EXP).
  """
  w = np.full(len(g), 1.0 / len(g)) if weights is None else np.asarray(weights, np.float64)
  sigma = sigma.copy()
  chosen, after, spent = [], [], 0.0
  free = np.ones(len(j_cand), bool)
  for _ in range(k):
    ok = free & (spent + cost <= budget * (1 + 1e-12))
    if not ok.any():
      break
    sj = j_cand @ sigma  # (n, p): Σ j per candidate
    gsj = g @ sj.T  # (t, n)
    gain = (w[:, None] * gsj**2).sum(0) / (noise + np.einsum("np,np->n", sj, j_cand))
    score = np.where(ok, gain / cost**cost_power, -np.inf)
    i = int(np.argmax(score))
    s = sj[i]
    sigma = sigma - np.outer(s, s) / (noise + s @ j_cand[i])
    chosen.append(i)
    free[i] = False
    spent += cost[i]
    after.append(float(np.einsum("t,tp,pq,tq->", w, g, sigma, g)))
  return chosen, after


def cheapest(cost: np.ndarray, observed: np.ndarray, count: int, budget: float) -> list[int]:
  """The cheapest unobserved runs, up to `count` of them within `budget` (ScaleBench `cheap_init`)."""
  out, spent = [], 0.0
  for i in np.argsort(cost, kind="stable"):
    if len(out) >= count:
      break
    if not observed[i] and spent + cost[i] <= budget:
      out.append(int(i))
      spent += cost[i]
  return out


@dataclasses.dataclass(frozen=True)
class Proposal:
  """The next runs to train and why: variance of the target now and after each pick."""

  indices: list[int]
  variance_now: float
  variance_after: list[float]
  theta: np.ndarray | None  # fitting-space fit on the observed runs (None before enough runs)
  reason: str  # "cheapest" (too few runs to linearise) or "variance"


def target_gradient(
  sp: Space, theta: np.ndarray, target: Mapping[str, np.ndarray] | Callable[[np.ndarray], float]
) -> np.ndarray:
  """G: the Jacobian of the predictions at target columns, or the central-difference Jacobian of a function of θ."""
  if isinstance(target, Mapping):
    return jacobian(sp.law, theta, target)
  step = 1e-5 * np.maximum(np.abs(theta), 1e-2)
  rows = []
  for i in range(len(theta)):
    up, down = theta.copy(), theta.copy()
    up[i] += step[i]
    down[i] -= step[i]
    rows.append((np.atleast_1d(target(up)) - np.atleast_1d(target(down))) / (2 * step[i]))
  return np.stack(rows, axis=1)  # (targets, parameters)


def propose(
  sp: Space,
  observed: np.ndarray,
  target: Mapping[str, np.ndarray] | Callable[[np.ndarray], float],
  k: int,
  budget: float,
  rng: np.random.Generator,
  theta: np.ndarray | None = None,
  starts: int = 8,
  init_share: float = 0.02,
  cost_power: float = 1.0,
) -> Proposal:
  """The next ≤ k runs (pool indices) within `budget` that most shrink the target's variance per cost.

  observed: bool mask of runs with a measured y; target: target columns (a loss at those points) or a
  scalar function of fitting-space θ; theta: a fit to start from (refitted here when None).
  """
  observed = np.asarray(observed, bool)
  p = len(sp.law.params)
  n_init = int(2.5 * p)
  if observed.sum() < n_init:
    # Too few runs to linearise around: the cheapest runs first, at most init_share of the pool's cost
    # beyond what is already spent (mspe.py `cheap_init`).
    cap = min(budget, max(init_share * sp.cost.sum() - sp.cost[observed].sum(), 0.0))
    picks = cheapest(sp.cost, observed, min(k, n_init - int(observed.sum())), cap)
    if picks:
      return Proposal(picks, float("nan"), [float("nan")] * len(picks), None, "cheapest")
  if observed.sum() == 0:
    return Proposal([], float("nan"), [], None, "cheapest")
  if theta is None:
    theta, mse = fit(sp, observed, rng, starts=starts)
  else:
    pred = predict(sp.law, theta, {c: v[observed] for c, v in sp.x.items()})
    mse = float(np.mean((_residual_space(sp.law, pred) - _residual_space(sp.law, sp.y[observed])) ** 2))
  noise = sigma2(mse, int(observed.sum()), float(np.var(_residual_space(sp.law, sp.y[observed]))))
  j_all = jacobian(sp.law, theta, sp.x)
  if sp.law.residual == "log":
    j_all = j_all / predict(sp.law, theta, sp.x)[:, None]
  j_all = np.where(np.isfinite(j_all), j_all, 0.0)
  sigma = covariance(j_all[observed], noise, prior_precision(sp, theta))
  g = np.atleast_2d(target_gradient(sp, theta, target))
  g = np.where(np.isfinite(g), g, 0.0)
  variance_now = float(np.mean(np.einsum("tp,pq,tq->t", g, sigma, g)))
  cand = np.flatnonzero(~observed)
  picks, after = greedy(
    sigma, g, j_all[cand], sp.cost[cand] / sp.cost.mean(), noise, k, budget / sp.cost.mean(), cost_power=cost_power
  )
  return Proposal([int(cand[i]) for i in picks], variance_now, after, theta, "variance")
