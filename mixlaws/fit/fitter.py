"""Robust multi-start fitting of a law to points, with bootstrap intervals and held-out scores.

The objective is Σ_i w_i·Huber_δ(r_i), r_i = ln ŷ_i − ln y_i (Hoffmann et al. 2022, Eq. 3; δ = 1e-3
by default), or least squares, or linear-space residuals where a paper fits that way. Every
start of the grid is optimised at once by `mixlaws.fit.lbfgs` in float64, with no tolerance on
the objective's decrease and a gradient tolerance of 1e-10: the objectives are tiny (1e-5…1e-3)
and flat, and default tolerances stop far from the optimum (data/README.md, "the optimizer
trap"). `method="scipy"` runs scipy's L-BFGS-B from the same starts on the same objective, to
cross-check. Fits are pure functions of a DataFrame; nothing here reads or writes files.

float64 is switched on only inside these functions (`jax.enable_x64` as a context), so a
process that also trains models keeps its float32 defaults.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.optimize

from mixlaws.fit import lbfgs
from mixlaws.fit.laws import Law, evaluate

_LAW_DEFAULT: Any = object()  # "use the law's own setting"
_PAD = 32  # point counts are padded to a multiple of this (zero weight) so compiled fits are reused

# Bound kinds of the change of variables the vectorised path uses (scipy takes bounds directly).
_FREE, _LOWER, _UPPER, _BOTH = 0, 1, 2, 3


def huber(r, delta: float):
  """Huber loss: r²/2 inside ±δ, linear outside (Huber 1964; scipy.special.huber)."""
  a = jnp.abs(r)
  return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


@dataclasses.dataclass(frozen=True)
class Fit:
  """A fitted law: coefficients as printed, how well and how reliably they were found, intervals."""

  law: str
  params: dict[str, float]  # natural (printed) coefficients, fixed ones included
  objective: float
  n_points: int
  n_starts: int
  n_at_best: int  # starts that ended within 1e-9 (relative) of the best objective
  stop: str  # why the best start stopped: gtol | float64 floor | maxiter
  grad_max: float
  method: str  # jax | scipy
  options: dict[str, Any]
  theta: dict[str, float]  # fitting-space values of the free parameters
  alternatives: list[dict[str, float]] = dataclasses.field(default_factory=list)  # next-best distinct optima
  samples: list[dict[str, float]] | None = None  # bootstrap replicates, natural coefficients
  ci: float | None = None
  intervals: dict[str, tuple[float, float]] | None = None

  def __repr__(self) -> str:
    """One line: the law, its coefficients (with intervals), and how the fit went; no bootstrap samples."""
    intervals = self.intervals or {}

    def coefficient(name: str, value: float) -> str:
      low_high = intervals.get(name)
      return f"{name}={value:.4g}" + (f" [{low_high[0]:.4g}, {low_high[1]:.4g}]" if low_high else "")

    ci = f"; {100 * self.ci:g}% intervals from {len(self.samples or [])} resamples" if self.ci else ""
    return (
      f"Fit({self.law} on {self.n_points} points: {', '.join(coefficient(k, v) for k, v in self.params.items())}; "
      f"objective {self.objective:.3g}, {self.n_at_best}/{self.n_starts} starts at best{ci})"
    )

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> Fit:
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - fields
    if unknown:
      raise ValueError(f"fit: unknown keys {sorted(unknown)}")
    data = dict(data)
    if data.get("intervals"):
      data["intervals"] = {k: tuple(v) for k, v in data["intervals"].items()}
    return cls(**data)


@dataclasses.dataclass(frozen=True)
class _Problem:
  law: Law
  free: tuple[str, ...]
  fixed: dict[str, float]  # fitting space
  kinds: np.ndarray  # (3, P): per free parameter its bound kind, lower and upper bound
  residual: str
  delta: float | None
  columns: dict[str, np.ndarray]  # padded
  y: np.ndarray  # padded, in residual space
  weights: np.ndarray  # padded with zeros
  n: int


def _to_params(u, kind, lo, hi, xp=jnp):
  """Fitting-space values from unconstrained ones: lo + e^u, hi − e^u, or lo + (hi − lo)·σ(u)."""
  one_sided = (kind == _LOWER) | (kind == _UPPER)
  e = xp.exp(xp.where(one_sided, u, 0.0))  # guarded: e^u of a free parameter may overflow
  s = 1.0 / (1.0 + xp.exp(-xp.clip(u, -700.0, 700.0)))
  both = lo + (hi - lo) * s
  return xp.where(kind == _LOWER, lo + e, xp.where(kind == _UPPER, hi - e, xp.where(kind == _BOTH, both, u)))


def _from_params(x: np.ndarray, kind: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
  """Inverse of `_to_params` (rows of starts); starts on or beyond a bound move just inside it."""
  span = np.where(kind == _BOTH, hi - lo, 1.0)
  z = np.clip((x - lo) / span, 1e-9, 1 - 1e-9)
  gap = np.where(kind == _LOWER, x - lo, hi - x)
  floor = 1e-9 * np.maximum(1.0, np.abs(np.where(kind == _LOWER, lo, hi)))
  one_sided = np.log(np.maximum(gap, floor))
  return np.where(kind == _FREE, x, np.where(kind == _BOTH, np.log(z) - np.log1p(-z), one_sided))


@functools.lru_cache(maxsize=256)
def _value_and_grad(law: Law, free: tuple[str, ...], fixed: tuple[str, ...], residual: str, squared: bool):
  """value_and_grad(u, weights, data) of the fit objective; cached so compiled fits are reused.

  Bounds, fixed values and δ travel in `data`, so changing them does not recompile.
  """
  predict = law.fn(log=residual == "log")

  def value(u, weights, data):
    columns, y, fixed_values, delta, bounds = data
    theta = _to_params(u, *bounds)
    p = {name: theta[i] for i, name in enumerate(free)}
    p.update({name: fixed_values[j] for j, name in enumerate(fixed)})
    r = predict(p, columns) - y
    loss = 0.5 * r * r if squared else huber(r, delta)
    return jnp.sum(weights * loss)

  return jax.value_and_grad(value)


def _problem(law, frame, target, weights, fixed, bounds, delta, residual) -> _Problem:
  target = target or law.target
  missing = [c for c in (*law.columns, target) if c not in frame.columns]
  if missing:
    raise ValueError(f"fit {law.name}: points lack column(s) {', '.join(missing)}")
  fixed = dict(fixed or {})
  unknown = set(fixed) - set(law.params)
  if unknown:
    raise ValueError(f"fixed: {sorted(unknown)} are not parameters of {law.name} ({', '.join(law.params)})")
  residual = law.residual if residual is _LAW_DEFAULT else residual
  if residual not in ("log", "linear"):
    raise ValueError(f"residual: {residual!r} must be 'log' or 'linear'")
  delta = law.delta if delta is _LAW_DEFAULT else delta
  if delta is not None and not delta > 0:
    raise ValueError(f"delta: Huber δ must be positive, got {delta}")
  n = len(frame)
  if n == 0:
    raise ValueError(f"fit {law.name}: no points")
  y = frame[target].to_numpy(np.float64)
  if residual == "log":
    if np.any(~(y > 0)):
      raise ValueError(f"{target}: log-space residuals need every value > 0")
    y = np.log(y)
  w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
  if w.shape != (n,) or np.any(~np.isfinite(w)) or np.any(w < 0):
    raise ValueError(f"weights: need {n} finite non-negative values")
  columns = {c: frame[c].to_numpy(np.float64) for c in law.columns}
  for c, v in columns.items():
    if not np.all(np.isfinite(v)):
      raise ValueError(f"{c}: every value must be finite")
  n_pad = -(-n // _PAD) * _PAD
  pad = lambda v: np.concatenate([v, np.repeat(v[:1], n_pad - n)])  # noqa: E731
  free = tuple(p for p in law.params if p not in fixed)
  all_bounds = {**law.bounds, **(bounds or {})}
  unknown = set(all_bounds) - set(law.params)
  if unknown:
    raise ValueError(f"bounds: {sorted(unknown)} are not parameters of {law.name} ({', '.join(law.params)})")
  kinds = np.zeros((3, len(free)))
  for i, name in enumerate(free):
    lo, hi = all_bounds.get(name, (None, None))
    if lo is not None and hi is not None and not lo < hi:
      raise ValueError(f"bounds: {name} needs lower < upper, got ({lo}, {hi})")
    kind = (
      _BOTH if lo is not None and hi is not None else _LOWER if lo is not None else _UPPER if hi is not None else _FREE
    )
    kinds[:, i] = kind, lo if lo is not None else 0.0, hi if hi is not None else 0.0
  return _Problem(
    law=law,
    free=free,
    fixed={k: float(v) for k, v in fixed.items()},
    kinds=kinds,
    residual=residual,
    delta=delta,
    columns={c: pad(v) for c, v in columns.items()},
    y=pad(y),
    weights=np.concatenate([w, np.zeros(n_pad - n)]),
    n=n,
  )


def _starts(problem: _Problem, init) -> np.ndarray:
  """Start points in fitting space, one row per start, columns in `problem.free` order."""
  law = problem.law
  if init is None:
    init = law.init
  if isinstance(init, Mapping):
    grids = [np.atleast_1d(np.asarray(init.get(name, law.init[name]), np.float64)) for name in problem.free]
    mesh = np.meshgrid(*grids, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)
  starts = np.atleast_2d(np.asarray(init, np.float64))
  if starts.shape[1] != len(problem.free):
    raise ValueError(f"init: starts need {len(problem.free)} columns ({', '.join(problem.free)})")
  return starts


def _data(problem: _Problem, identity: bool = False):
  """The objective's arrays; identity=True drops the change of variables (scipy takes bounds itself)."""
  fixed_values = jnp.asarray([problem.fixed[k] for k in problem.fixed], jnp.float64)
  delta = jnp.asarray(problem.delta if problem.delta is not None else 1.0, jnp.float64)
  columns = {c: jnp.asarray(v) for c, v in problem.columns.items()}
  kinds = np.zeros_like(problem.kinds) if identity else problem.kinds
  return columns, jnp.asarray(problem.y), fixed_values, delta, tuple(jnp.asarray(k) for k in kinds)


def _vg(problem: _Problem):
  return _value_and_grad(problem.law, problem.free, tuple(problem.fixed), problem.residual, problem.delta is None)


@functools.lru_cache(maxsize=256)
def _jit(fn):
  """One jitted wrapper per objective, so single-point evaluations compile once."""
  return jax.jit(fn, compiler_options=lbfgs.compiler_options())


def _to_u(problem: _Problem, theta: np.ndarray) -> np.ndarray:
  return _from_params(theta, *problem.kinds)


def _to_theta(problem: _Problem, u: np.ndarray) -> np.ndarray:
  with np.errstate(over="ignore"):
    return _to_params(u, *problem.kinds, xp=np)


def _solve_jax(problem: _Problem, starts: np.ndarray, weights: np.ndarray, gtol, maxiter, pool) -> lbfgs.Result:
  """Every (start, weight row) pair optimised at once; returns results in fitting space."""
  with jax.enable_x64(True):
    result = lbfgs.minimize(
      _vg(problem), _to_u(problem, starts), weights, _data(problem), gtol=gtol, maxiter=maxiter, pool=pool
    )
  return dataclasses.replace(result, x=_to_theta(problem, result.x))


def _solve_scipy(problem: _Problem, starts: np.ndarray, gtol, maxiter) -> lbfgs.Result:
  """scipy L-BFGS-B from each start in turn, bounds native, same objective and tolerances."""
  bounds = [
    (lo if kind in (_LOWER, _BOTH) else None, hi if kind in (_UPPER, _BOTH) else None)
    for kind, lo, hi in problem.kinds.T
  ]
  n = len(starts)
  out = lbfgs.Result(
    x=starts.copy(),
    f=np.full(n, np.inf),
    grad_max=np.full(n, np.inf),
    iterations=np.zeros(n, np.int64),
    status=np.full(n, lbfgs.NONFINITE, np.int64),
  )
  with jax.enable_x64(True):
    data = _data(problem, identity=True)
    weights = jnp.asarray(problem.weights)
    vg = _jit(_vg(problem))

    def fun(x):
      f, g = vg(jnp.asarray(x), weights, data)
      return float(f), np.asarray(g, np.float64)

    for i, x0 in enumerate(starts):
      lo = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
      hi = np.array([b[1] if b[1] is not None else np.inf for b in bounds])
      x0 = np.clip(x0, lo, hi)
      if not np.isfinite(fun(x0)[0]):
        continue
      res = scipy.optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        tol=0,
        options={"ftol": 0.0, "gtol": gtol, "maxiter": maxiter, "maxfun": 20 * maxiter, "maxls": 50},
      )
      out.x[i], out.f[i] = res.x, res.fun
      out.grad_max[i] = float(np.max(np.abs(res.jac)))
      out.iterations[i] = res.nit
      out.status[i] = lbfgs.CONVERGED if res.status == 0 and out.grad_max[i] <= gtol else lbfgs.STALLED
  return out


def _distinct_optima(result: lbfgs.Result, k: int) -> list[int]:
  """Indices of the k best starts whose objectives differ (relative 1e-9) from each better one."""
  order = np.argsort(np.where(np.isfinite(result.f), result.f, np.inf))
  picked: list[int] = []
  for i in order:
    if not np.isfinite(result.f[i]):
      break
    if all(abs(result.f[i] - result.f[j]) > 1e-9 * abs(result.f[j]) for j in picked):
      picked.append(int(i))
    if len(picked) == k:
      break
  return picked


def fit(
  law: Law,
  frame: pd.DataFrame,
  *,
  target: str | None = None,
  weights: Sequence[float] | None = None,
  init: Mapping[str, Sequence[float]] | np.ndarray | None = None,
  fixed: Mapping[str, float] | None = None,
  bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
  delta: float | None = _LAW_DEFAULT,
  residual: str = _LAW_DEFAULT,
  method: str = "jax",
  gtol: float = 1e-10,
  maxiter: int = 5000,
  pool: int = 128,
  bootstrap: int = 0,
  ci: float = 0.95,
  seed: int = 0,
  bootstrap_starts: int = 4,
) -> Fit:
  """Fits `law` to the rows of `frame` from every start of its grid (or `init`); keeps the best.

  fixed: fitting-space values held constant (e.g. {"alpha": 0.35}); bounds: per fitting-space
  parameter (lo, hi), either may be None; bootstrap: number of resamples over points, each refitted
  (by the vectorised path, whatever `method`) from the best `bootstrap_starts` optima of this fit.
  """
  if method not in ("jax", "scipy"):
    raise ValueError(f"method: {method!r} must be 'jax' or 'scipy'")
  problem = _problem(law, frame, target, weights, fixed, bounds, delta, residual)
  starts = _starts(problem, init)
  if method == "jax":
    result = _solve_jax(
      problem, starts, np.broadcast_to(problem.weights, (len(starts), len(problem.weights))), gtol, maxiter, pool
    )
  else:
    result = _solve_scipy(problem, starts, gtol, maxiter)
  best = _distinct_optima(result, 1 + max(bootstrap_starts - 1, 3))
  if not best:
    raise ValueError(f"fit {law.name}: the objective is not finite at any start")
  i = best[0]
  f = result.f[i]
  theta = dict(zip(problem.free, map(float, result.x[i])))
  out = Fit(
    law=law.name,
    params=law.natural({**theta, **problem.fixed}),
    objective=float(f),
    n_points=problem.n,
    n_starts=len(starts),
    n_at_best=int(np.sum(result.f <= f + 1e-9 * abs(f))),
    stop=lbfgs.STATUS_NAMES.get(int(result.status[i]), "running"),
    grad_max=float(result.grad_max[i]),
    method=method,
    options={
      "target": target or law.target,
      "residual": problem.residual,
      "delta": problem.delta,
      "fixed": problem.fixed,
      "gtol": gtol,
      "maxiter": maxiter,
    },
    theta=theta,
    alternatives=[dict(zip(problem.free, map(float, result.x[j]))) for j in best[1:]],
  )
  if bootstrap:
    out = _bootstrap(problem, out, bootstrap, ci, seed, bootstrap_starts, gtol, maxiter, pool)
  return out


def _bootstrap(
  problem: _Problem, base: Fit, n_resamples: int, ci: float, seed: int, n_starts: int, gtol, maxiter, pool
) -> Fit:
  """Refits on points resampled with replacement, each from the best few optima of the full fit."""
  if not 0 < ci < 1:
    raise ValueError(f"ci: {ci} must lie in (0, 1)")
  rng = np.random.default_rng(seed)
  n = problem.n
  counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)
  w = np.zeros((n_resamples, len(problem.weights)))
  w[:, :n] = counts * problem.weights[:n]
  starts = np.array([[t[k] for k in problem.free] for t in [base.theta, *base.alternatives][:n_starts]])
  k = len(starts)
  result = _solve_jax(problem, np.tile(starts, (n_resamples, 1)), np.repeat(w, k, axis=0), gtol, maxiter, pool)
  f = result.f.reshape(n_resamples, k)
  x = result.x.reshape(n_resamples, k, -1)[np.arange(n_resamples), np.argmin(f, axis=1)]
  law = problem.law
  samples = [law.natural({**dict(zip(problem.free, map(float, row))), **problem.fixed}) for row in x]
  lo_q, hi_q = 50 * (1 - ci), 50 * (1 + ci)
  intervals = {}
  for name in samples[0]:
    values = np.array([s[name] for s in samples])
    intervals[name] = (float(np.percentile(values, lo_q)), float(np.percentile(values, hi_q)))
  return dataclasses.replace(base, samples=samples, ci=ci, intervals=intervals)


def predict(law: Law, params: Mapping[str, float] | Fit, frame: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
  """ŷ at the rows of `frame` for a fit or a set of printed coefficients (float64)."""
  coefficients = params.params if isinstance(params, Fit) else params
  return evaluate(law, coefficients, {c: np.asarray(frame[c]) for c in law.columns})


def prediction_interval(
  law: Law, result: Fit, frame: pd.DataFrame | Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
  """Percentile interval (at the fit's `ci`) of ŷ across the bootstrap replicates."""
  if not result.samples:
    raise ValueError("fit: has no bootstrap samples; fit with bootstrap > 0")
  values = np.stack([predict(law, s, frame) for s in result.samples])
  lo_q, hi_q = 50 * (1 - result.ci), 50 * (1 + result.ci)
  return np.percentile(values, lo_q, axis=0), np.percentile(values, hi_q, axis=0)


def objective(law: Law, params: Mapping[str, float], frame: pd.DataFrame, **kwargs) -> float:
  """The fit objective at printed coefficients `params` (same options as `fit`)."""
  problem = _problem(
    law,
    frame,
    kwargs.get("target"),
    kwargs.get("weights"),
    kwargs.get("fixed"),
    None,
    kwargs.get("delta", _LAW_DEFAULT),
    kwargs.get("residual", _LAW_DEFAULT),
  )
  theta = law.fitting(params)
  with jax.enable_x64(True):
    u = jnp.asarray([theta[k] for k in problem.free])
    f, _ = _jit(_vg(problem))(u, jnp.asarray(problem.weights), _data(problem, identity=True))
    return float(f)


# --- point weights and selection rules -------------------------------------------------------


def loss_weights(loss: Sequence[float], power: float = -30.0) -> np.ndarray:
  """(ln L)^power, scaled to mean 1: down-weights high-loss runs (Ludziejewski et al. 2025, Appendix B)."""
  log_loss = np.log(np.asarray(loss, np.float64))
  if np.any(log_loss <= 0):
    raise ValueError("loss: loss weighting needs every loss > 1 nat")
  w = log_loss**power
  return w / w.mean()


def drop_highest(frame: pd.DataFrame, k: int, column: str = "loss") -> pd.DataFrame:
  """The points without the k highest values of `column` (e.g. diverged or undertrained runs)."""
  if k < 0 or k >= len(frame):
    raise ValueError(f"k: must lie in [0, {len(frame)}), got {k}")
  return frame.drop(frame[column].nlargest(k).index) if k else frame


def lowest(frame: pd.DataFrame, k: int, column: str = "loss") -> np.ndarray:
  """Mask of the k rows with the lowest `column`: the extrapolation set of Ludziejewski et al. 2025."""
  if not 0 < k < len(frame):
    raise ValueError(f"k: must lie in (0, {len(frame)}), got {k}")
  mask = np.zeros(len(frame), bool)
  mask[np.argsort(frame[column].to_numpy(), kind="stable")[:k]] = True
  return mask


@dataclasses.dataclass(frozen=True)
class Holdout:
  """A fit on the training rows scored on the held-out rows, in the target's own units."""

  fit: Fit
  n_train: int
  n_test: int
  rmse: float
  max_error: float
  train_rmse: float


def holdout(law: Law, frame: pd.DataFrame, test: Sequence[bool], **fit_kwargs) -> Holdout:
  """Fits on the rows where `test` is False and reports RMSE and max |error| on the rest."""
  test = np.asarray(test, bool)
  if test.shape != (len(frame),) or test.all() or not test.any():
    raise ValueError("holdout: the mask must select some but not all points")
  train = frame[~test]
  weights = fit_kwargs.pop("weights", None)
  if weights is not None:
    weights = np.asarray(weights)[~test]
  result = fit(law, train, weights=weights, **fit_kwargs)
  target = fit_kwargs.get("target") or law.target
  err_test = predict(law, result, frame[test]) - frame[test][target].to_numpy()
  err_train = predict(law, result, train) - train[target].to_numpy()
  return Holdout(
    fit=result,
    n_train=int((~test).sum()),
    n_test=int(test.sum()),
    rmse=float(np.sqrt(np.mean(err_test**2))),
    max_error=float(np.max(np.abs(err_test))),
    train_rmse=float(np.sqrt(np.mean(err_train**2))),
  )
