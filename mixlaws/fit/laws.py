"""Scaling laws as named objects: formula, parameters, default start grid, the columns they read.

A law is a function of parameters `p` and columns `x` (dicts of JAX arrays), written with
`jax.numpy`. Parameters are named in fitting space: `log_X` is the natural log of a positive
coefficient X (fitted in log, and combined with `logsumexp` so the prediction stays accurate
over many orders of magnitude, after Hoffmann et al. 2022); every other name is used as is.
`natural()` turns fitting-space values into the coefficients a paper prints. Published
coefficient sets are stored beside their law in natural form.

Add a law by writing `log_predict` (or `predict`) plus names, a start grid and optional bounds:

    my_law = Law("my_law", "L = E + A/N^α", ("log_A", "alpha", "log_E"),
                 columns=("params",), init={"log_A": (0, 5), "alpha": (0.1, 0.5), "log_E": (0, 1)},
                 log_predict=lambda p, x: logsumexp(jnp.stack(
                   [p["log_A"] - p["alpha"] * jnp.log(x["params"]), p["log_E"] + 0 * x["params"]]), axis=0))

Sign conventions follow each paper (PAPERS.md §0.2): Krajewski et al. 2024 and Hoffmann et al.
write positive exponents under a division; Ludziejewski et al. 2025 write negative exponents μ, ν.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

Array = jax.Array
Fn = Callable[[Mapping[str, Array], Mapping[str, Array]], Array]


@dataclasses.dataclass(frozen=True, eq=False)
class Law:
  """A parametric law ŷ = f(p; x) with what fitting it needs. Hashed by identity."""

  name: str
  formula: str  # as the paper prints it, with its equation number
  params: tuple[str, ...]  # fitting-space names; log_X is ln of a positive coefficient X
  columns: tuple[str, ...]  # fitting-input columns the law reads
  init: Mapping[str, Sequence[float]]  # default start grid per parameter (fitting space); all combinations
  log_predict: Fn | None = None  # ln ŷ; preferred for log-space residuals
  predict: Fn | None = None  # ŷ; derived from log_predict when absent
  target: str = "loss"  # the column the law predicts
  bounds: Mapping[str, tuple[float | None, float | None]] = dataclasses.field(default_factory=dict)
  convention: str | None = None  # counting convention of N and FLOPs (mixlaws.counting)
  residual: str = "log"  # residuals in "log" (ln ŷ − ln y) or "linear" (ŷ − y) space
  delta: float | None = 1e-3  # Huber δ on the residuals; None → least squares
  published: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.log_predict is None and self.predict is None:
      raise ValueError(f"law {self.name}: needs log_predict or predict")
    missing = set(self.params) - set(self.init)
    if missing:
      raise ValueError(f"law {self.name}: init grid lacks {sorted(missing)}")

  def fn(self, log: bool) -> Fn:
    if log:
      return self.log_predict or (lambda p, x: jnp.log(self.predict(p, x)))
    return self.predict or (lambda p, x: jnp.exp(self.log_predict(p, x)))

  @property
  def natural_names(self) -> tuple[str, ...]:
    return tuple(natural_name(n) for n in self.params)

  def natural(self, theta: Mapping[str, float]) -> dict[str, float]:
    """Fitting-space values → the coefficients as printed (exp of every log_X)."""
    return {natural_name(k): (_exp(v) if k.startswith("log_") else float(v)) for k, v in theta.items()}

  def fitting(self, natural: Mapping[str, float]) -> dict[str, float]:
    """Printed coefficients → fitting-space values."""
    out = {}
    for name in self.params:
      value = float(natural[natural_name(name)])
      if not name.startswith("log_"):
        out[name] = value
      elif value < 0:
        raise ValueError(f"law {self.name}: coefficient {natural_name(name)} must not be negative, got {value:g}")
      else:
        out[name] = math.log(value) if value > 0 else -math.inf  # a coefficient fitted to 0 (exp(-inf))
    return out

  def grid(self) -> np.ndarray:
    """Every combination of the default start values, one row per start, columns in `params` order."""
    return np.array(list(itertools.product(*(self.init[n] for n in self.params))), dtype=np.float64)


def _exp(v: float) -> float:
  """exp that says inf instead of raising: an unbounded coefficient of a degenerate fit runs away."""
  try:
    return math.exp(v)
  except OverflowError:
    return math.inf


def natural_name(name: str) -> str:
  return name[4:] if name.startswith("log_") else name


@functools.cache
def _compiled(law: Law):
  from mixlaws.fit.lbfgs import compiler_options

  return jax.jit(law.fn(log=False), compiler_options=compiler_options())


def evaluate(law: Law, params: Mapping[str, float], columns: Mapping[str, Sequence[float]]) -> np.ndarray:
  """ŷ in float64 for printed (natural) coefficients `params` at the given columns."""
  missing = [c for c in law.columns if c not in columns]
  if missing:
    raise ValueError(f"law {law.name}: needs column(s) {', '.join(missing)}")
  with jax.enable_x64(True):
    theta = {k: jnp.asarray(v, jnp.float64) for k, v in law.fitting(params).items()}
    x = {c: jnp.asarray(np.asarray(columns[c], np.float64)) for c in law.columns}
    return np.asarray(_compiled(law)(theta, x))


def _lse(*terms: Array) -> Array:
  """ln Σ exp(term), broadcasting scalars against columns."""
  return logsumexp(jnp.stack(jnp.broadcast_arrays(*terms)), axis=0)


def expert_transform(experts: Array, e_start: Array, e_max: Array) -> Array:
  """Ê, the saturating expert count of Clark et al. 2022, as Ludziejewski et al. 2025 Eq. 4 writes it.

  1/Ê = 1/(E − 1 + (1/E_start − 1/E_max)^−1) + 1/E_max, so Ê(1) = E_start and Ê → E_max.
  """
  return 1.0 / (1.0 / (experts - 1.0 + 1.0 / (1.0 / e_start - 1.0 / e_max)) + 1.0 / e_max)


def neg_log_accuracy(accuracy: Sequence[float], chance: float = 0.0) -> np.ndarray:
  """−ln Acc', with the chance correction Acc' = (Acc − chance)/(1 − chance) of arXiv 2512.08894."""
  acc = (np.asarray(accuracy, np.float64) - chance) / (1.0 - chance)
  if np.any(acc <= 0) or np.any(acc > 1):
    raise ValueError("accuracy: every value must lie in (chance, 1]")
  return -np.log(acc)


# --- Hoffmann et al. 2022 (Chinchilla), Approach 3 -------------------------------------------


def _chinchilla(p, x):
  # Hoffmann et al. 2022, Eq. 2 in log-sum-exp form: ln(E + A/N^α + B/D^β).
  return _lse(p["log_A"] - p["alpha"] * jnp.log(x["params"]), p["log_B"] - p["beta"] * jnp.log(x["tokens"]), p["log_E"])


CHINCHILLA = Law(
  name="chinchilla",
  formula="L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, Eq. 2; Krajewski et al. 2024, Eq. 1)",
  params=("log_A", "alpha", "log_B", "beta", "log_E"),
  columns=("params", "tokens"),
  log_predict=_chinchilla,
  # Hoffmann et al. 2022, Appendix D.2: 4,500 starts.
  init={
    "log_A": (0, 5, 10, 15, 20, 25),
    "alpha": (0, 0.5, 1, 1.5, 2),
    "log_B": (0, 5, 10, 15, 20, 25),
    "beta": (0, 0.5, 1, 1.5, 2),
    "log_E": (-1, -0.5, 0, 0.5, 1),
  },
  convention="chinchilla",
  published={
    "hoffmann2022": {"A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28, "E": 1.69},
    # Krajewski et al. 2024, Table 1, dense row (N = 12·d²·n non-embedding, F = 6ND).
    "krajewski2024_dense": {"A": 16.3, "alpha": 0.126, "B": 26.7, "beta": 0.127, "E": 0.47},
  },
)


# --- Krajewski et al. 2024, fine-grained MoE -------------------------------------------------


def _krajewski2024(p, x):
  # Krajewski et al. 2024, Eq. 9: ln(c + (g/G^γ + a)/N^α + b/D^β), nested log-sum-exp.
  coef_n = _lse(p["log_g"] - p["gamma"] * jnp.log(x["granularity"]), p["log_a"])
  return _lse(p["log_c"], coef_n - p["alpha"] * jnp.log(x["params"]), p["log_b"] - p["beta"] * jnp.log(x["tokens"]))


KRAJEWSKI2024 = Law(
  name="krajewski2024",
  formula="L(N, D, G) = c + (g/G^γ + a)/N^α + b/D^β (Krajewski et al. 2024, Eq. 9; N total non-embedding)",
  params=("log_a", "alpha", "log_b", "beta", "log_g", "gamma", "log_c"),
  columns=("params", "tokens", "granularity"),
  log_predict=_krajewski2024,
  init={
    "log_a": (0, 4, 8),
    "alpha": (0.1, 0.4),
    "log_b": (0, 4, 8),
    "beta": (0.1, 0.4),
    "log_g": (-1, 1, 3),
    "gamma": (0.2, 0.8),
    "log_c": (-1, 0, 1),
  },
  convention="krajewski2024",
  published={
    "table1": {"a": 18.1, "alpha": 0.115, "b": 30.8, "beta": 0.147, "g": 2.1, "gamma": 0.58, "c": 0.47},
    "table5_holdout": {"a": 17.6, "alpha": 0.114, "b": 26.7, "beta": 0.140, "g": 2.07, "gamma": 0.570, "c": 0.472},
    "table8_e16": {"a": 19.64, "alpha": 0.124, "b": 57.07, "beta": 0.169, "g": 1.18, "gamma": 0.986, "c": 0.472},
  },
)


# --- Ludziejewski et al. 2025, joint MoE law -------------------------------------------------


def _ludziejewski2025(p, x):
  # Ludziejewski et al. 2025, Eq. 1/6 with the Eq. 4 transform; exponents α, β negative as printed.
  le = jnp.log(expert_transform(x["experts"], jnp.exp(p["log_E_start"]), jnp.exp(p["log_E_max"])))
  n_term = p["log_a"] + p["delta"] * le + (p["alpha"] + p["gamma"] * le) * jnp.log(x["active_params"])
  d_term = p["log_b"] + p["omega"] * le + (p["beta"] + p["zeta"] * le) * jnp.log(x["tokens"])
  return _lse(n_term, d_term, p["log_c"])


LUDZIEJEWSKI2025 = Law(
  name="ludziejewski2025",
  formula=(
    "L(N_act, D, Ê) = a·Ê^δ·N_act^(α + γ ln Ê) + b·Ê^ω·D^(β + ζ ln Ê) + c, "
    "1/Ê = 1/(E − 1 + (1/E_start − 1/E_max)^−1) + 1/E_max (Ludziejewski et al. 2025, Eq. 1, 4, 6)"
  ),
  params=("log_a", "alpha", "delta", "gamma", "log_b", "beta", "omega", "zeta", "log_E_start", "log_E_max", "log_c"),
  columns=("active_params", "tokens", "experts"),
  log_predict=_ludziejewski2025,
  # A reduced version of the authors' grid (Appendix B): 3^11 starts would be 177,147.
  init={
    "log_a": (math.log(30), math.log(300)),
    "alpha": (-0.05, -0.25),
    "delta": (-0.3, 0.3),
    "gamma": (0.0,),
    "log_b": (math.log(30), math.log(300)),
    "beta": (-0.05, -0.25),
    "omega": (-0.3, 0.3),
    "zeta": (0.0,),
    "log_E_start": (0.0, math.log(2.0)),
    "log_E_max": (math.log(300.0),),
    "log_c": (0.0, math.log(2.0)),
  },
  convention="ludziejewski2025",
  delta=0.01,  # Ludziejewski et al. 2025 Appendix B: Huber δ = 0.01 on ln L
  published={
    "table3": {
      "a": 35.91,
      "alpha": -0.1889,
      "delta": -0.2285,
      "gamma": 0.0098,
      "b": 35.98,
      "beta": -0.1775,
      "omega": 0.5529,
      "zeta": -0.0259,
      "E_start": 2.0732,
      "E_max": 290.4521,
      "c": 1.3637,
    }
  },
)


def ludziejewski_per_experts(params: Mapping[str, float], experts: float) -> dict[str, float]:
  """The joint law reduced to Chinchilla form at fixed E: m, μ, n, ν, c (Ludziejewski et al. 2025, Table 4)."""
  le = math.log(float(expert_transform(experts, params["E_start"], params["E_max"])))
  return {
    "m": params["a"] * math.exp(params["delta"] * le),
    "mu": params["alpha"] + params["gamma"] * le,
    "n": params["b"] * math.exp(params["omega"] * le),
    "nu": params["beta"] + params["zeta"] * le,
    "c": params["c"],
  }


# --- Wang et al. 2024 (UNVERIFIED form, PAPERS.md §3) ----------------------------------------


def _wang2024(p, x):
  # Wang et al. 2024, "Eq. 5" (UNVERIFIED): ln(A/(N^α·E^γ) + B/D^β + σ).
  return _lse(
    p["log_A"] - p["alpha"] * jnp.log(x["active_params"]) - p["gamma"] * jnp.log(x["experts"]),
    p["log_B"] - p["beta"] * jnp.log(x["tokens"]),
    p["log_sigma"],
  )


WANG2024 = Law(
  name="wang2024",
  formula="L(N, D, E) = A/(N^α·E^γ) + B/D^β + σ (Wang et al. 2024, Eq. 5 as reported; UNVERIFIED)",
  params=("log_A", "alpha", "gamma", "log_B", "beta", "log_sigma"),
  columns=("active_params", "tokens", "experts"),
  log_predict=_wang2024,
  init={
    "log_A": (0, 5, 10),
    "alpha": (0.1, 0.4),
    "gamma": (0.0, 0.2),
    "log_B": (0, 5, 10),
    "beta": (0.1, 0.4),
    "log_sigma": (-1, 0, 1),
  },
)


# --- Clark et al. 2022, routed MoE -----------------------------------------------------------


def _clark2022(p, x):
  # Clark et al. 2022: ln L = a·ln N + b·ln Ê + c·ln N·ln Ê + d, at a fixed token count; Ê as above.
  ln_n = jnp.log(x["active_params"])
  le = jnp.log(expert_transform(x["experts"], jnp.exp(p["log_E_start"]), jnp.exp(p["log_E_max"])))
  return p["a"] * ln_n + p["b"] * le + p["c"] * ln_n * le + p["d"]


CLARK2022 = Law(
  name="clark2022",
  formula=(
    "ln L(N, E) = a·ln N + b·ln Ê + c·ln N·ln Ê + d at fixed D (Clark et al. 2022; quoted by "
    "Krajewski et al. 2024 as Eq. 2 with E for Ê)"
  ),
  params=("a", "b", "c", "d", "log_E_start", "log_E_max"),
  columns=("active_params", "experts"),
  log_predict=_clark2022,
  init={
    "a": (-0.1, -0.05),
    "b": (-0.1, 0.0),
    "c": (0.0, 0.005),
    "d": (1.0, 2.0, 3.0),
    "log_E_start": (0.0, 1.0),
    "log_E_max": (math.log(100.0), math.log(500.0)),
  },
)


# --- Loss against compute ---------------------------------------------------------------------


def _saturating_power(p, x):
  # y = E + A·C^−α as ln y = logaddexp(a − α ln C, e) (Porian et al. 2024, analysis.py): the loss of the
  # compute law, and −ln Acc of the downstream ceiling law (arXiv 2512.08894, Eq. 10, Appendix L).
  return _lse(p["log_A"] - p["alpha"] * jnp.log(x["flops"]), p["log_E"])


COMPUTE = Law(
  name="compute",
  formula="L(C) = E + A·C^−α (Porian et al. 2024, the saturating loss of compute-optimal runs)",
  params=("log_A", "alpha", "log_E"),
  columns=("flops",),
  log_predict=_saturating_power,
  # Porian et al. 2024, fit_loss_with_saturation: the 120-point start grid.
  init={"log_A": (0, 5, 10, 15, 20, 25), "alpha": (0, 0.1, 0.2, 0.3), "log_E": (-1, -0.5, 0, 0.5, 1)},
)


# --- Downstream metrics, arXiv 2512.08894 (PAPERS.md §6.1) -----------------------------------


def _downstream_power(p, x):
  # arXiv 2512.08894, Eq. 2: −ln Acc = A·C^−α, i.e. ln(−ln Acc) = ln A − α ln C.
  return p["log_A"] - p["alpha"] * jnp.log(x["flops"])


DOWNSTREAM_POWER = Law(
  name="downstream_power",
  formula="−ln Acc = A·C^−α at a fixed tokens-per-parameter ratio (arXiv 2512.08894, Eq. 2)",
  params=("log_A", "alpha"),
  columns=("flops",),
  target="neg_log_accuracy",
  log_predict=_downstream_power,
  init={"log_A": (0.0, 10.0, 20.0), "alpha": (0.1, 0.5)},
  delta=None,  # the official code fits ln(−ln Acc) by ordinary least squares
)


DOWNSTREAM_CEILING = Law(
  name="downstream_ceiling",
  formula="−ln Acc = A·C^−α + E, maximum accuracy exp(−E) (arXiv 2512.08894, Eq. 10, Appendix L)",
  params=("log_A", "alpha", "log_E"),
  columns=("flops",),
  target="neg_log_accuracy",
  log_predict=_saturating_power,  # the ceiling is Acc = exp(−E)
  # The official start grid: α ∈ linspace(0, 2, 5), ln A ∈ linspace(0, 25, 6), ln E ∈ linspace(−1, 1, 5).
  init={
    "log_A": tuple(np.linspace(0, 25, 6)),
    "alpha": tuple(np.linspace(0, 2, 5)),
    "log_E": tuple(np.linspace(-1, 1, 5)),
  },
)


def _downstream_tpr(p, x):
  # arXiv 2512.08894, Eq. 4: −ln Acc = A·N^−α + B·D^−β across tokens-per-parameter ratios.
  return _lse(p["log_A"] - p["alpha"] * jnp.log(x["params"]), p["log_B"] - p["beta"] * jnp.log(x["tokens"]))


DOWNSTREAM_TPR = Law(
  name="downstream_tpr",
  formula="−ln Acc = A·N^−α + B·D^−β across token-per-parameter ratios (arXiv 2512.08894, Eq. 4)",
  params=("log_A", "alpha", "log_B", "beta"),
  columns=("params", "tokens"),
  target="neg_log_accuracy",
  log_predict=_downstream_tpr,
  # The official start grid: α, β ∈ {0.5, 1, 1.5}; ln A, ln B ∈ {5, 10, 15}.
  init={"log_A": (5, 10, 15), "alpha": (0.5, 1.0, 1.5), "log_B": (5, 10, 15), "beta": (0.5, 1.0, 1.5)},
)


# --- Gadre et al. 2024, over-training (data/README.md §3) ------------------------------------


def _gadre2024(p, x):
  # Gadre et al. 2024, Eq. 4 with tied exponents: L = E + A·N^−η + B·D^−η.
  eta = p["eta"]
  return p["E"] + jnp.exp(p["log_A"] - eta * jnp.log(x["params"])) + jnp.exp(p["log_B"] - eta * jnp.log(x["tokens"]))


GADRE2024 = Law(
  name="gadre2024",
  formula="L(N, D) = E + A·N^−η + B·D^−η, tied exponents (Gadre et al. 2024, Eq. 4; scaling/laws.py)",
  params=("log_A", "log_B", "eta", "E"),
  columns=("params", "tokens"),
  predict=_gadre2024,
  # The authors' start grid (scaling/shared.py::fit_ds), in this parametrisation.
  init={
    "log_A": tuple(np.log([1e2, 3e2, 1e3, 3e3])),
    "log_B": tuple(np.log([1e2, 3e2, 1e3, 3e3])),
    "eta": (0.1, 0.3),
    "E": (0.0, 1.0, 2.0, 10.0),
  },
  residual="linear",
  delta=None,  # scipy curve_fit: least squares in linear loss space
  published={
    "rpj": {"E": 1.8366, "A": 166.211, "B": 287.168, "eta": 0.2729},
    "c4_original": {"E": 1.5083, "A": 113.693, "B": 152.512, "eta": 0.2425},
    "rw_original": {"E": 1.7345, "A": 125.096, "B": 196.029, "eta": 0.2544},
  },
)


def _gadre2024_error(p, x):
  # Gadre et al. 2024, Eq. 5: Err = ε − k·exp(−γ·L).
  return p["epsilon"] - jnp.exp(p["log_k"] - p["gamma"] * x["loss"])


GADRE2024_ERROR = Law(
  name="gadre2024_error",
  formula="Err(L) = ε − k·exp(−γ·L), average top-1 error against loss (Gadre et al. 2024, Eq. 5)",
  params=("epsilon", "log_k", "gamma"),
  columns=("loss",),
  target="error",
  predict=_gadre2024_error,
  init={"epsilon": (0.5, 1.0), "log_k": (-1.0, 0.0, 1.0), "gamma": (0.5, 1.0, 2.0)},
  residual="linear",
  delta=None,
  published={
    "rpj_avg_subset": {"epsilon": 0.8570, "k": 2.2065, "gamma": 0.7146},
    "rpj_avg": {"epsilon": 0.7608, "k": 1.3229, "gamma": 0.8907},
    "c4_original_avg_subset": {"epsilon": 0.8497, "k": 2.0789, "gamma": 0.7561},
    "c4_original_avg": {"epsilon": 0.7589, "k": 1.2885, "gamma": 0.9722},
    "rw_original_avg_subset": {"epsilon": 0.8653, "k": 2.2148, "gamma": 0.7070},
    "rw_original_avg": {"epsilon": 0.7677, "k": 1.1281, "gamma": 0.8215},
  },
)


# --- Muennighoff et al. 2023, data-constrained (data/README.md §4) ---------------------------


def muennighoff_optimal_params(p, unique_tokens):
  """N_opt_for(U) = (U·G)^(β/α)·G with G = (αA/(βB))^(1/(α+β)): the compute-optimal N whose D_opt is U."""
  alpha, beta = p["alpha"], p["beta"]
  log_g = (jnp.log(alpha) + p["log_A"] - jnp.log(beta) - p["log_B"]) / (alpha + beta)
  return jnp.exp((jnp.log(unique_tokens) + log_g) * beta / alpha + log_g)


def _muennighoff2023(p, x):
  # Muennighoff et al. 2023, Eq. 5-7: effective data and parameters with repetition decay R_D*, R_N*.
  n, d, u = x["params"], x["tokens"], x["unique_tokens"]
  r_d_star, r_n_star = jnp.exp(p["log_R_D"]), jnp.exp(p["log_R_N"])
  u_n = jnp.minimum(n, muennighoff_optimal_params(p, u))
  r_d = jnp.maximum(d / u - 1.0, 0.0)
  r_n = jnp.maximum(n / u_n - 1.0, 0.0)
  d_eff = u + u * r_d_star * (1.0 - jnp.exp(-r_d / r_d_star))
  n_eff = u_n + u_n * r_n_star * (1.0 - jnp.exp(-r_n / r_n_star))
  return _lse(p["log_A"] - p["alpha"] * jnp.log(n_eff), p["log_B"] - p["beta"] * jnp.log(d_eff), p["log_E"])


MUENNIGHOFF2023 = Law(
  name="muennighoff2023",
  formula=(
    "L = E + A/(U_N + U_N·R_N*·(1 − e^(−R_N/R_N*)))^α + B/(U_D + U_D·R_D*·(1 − e^(−R_D/R_D*)))^β "
    "(Muennighoff et al. 2023, Eq. 5-7)"
  ),
  params=("log_A", "log_B", "log_E", "alpha", "beta", "log_R_D", "log_R_N"),
  columns=("params", "tokens", "unique_tokens"),
  log_predict=_muennighoff2023,
  # The notebook's grid: a, b ∈ linspace(0, 25, 5), e ∈ linspace(−1, 1, 4), α = β ∈ linspace(0, 2, 4)
  # (here α, β untied, zero dropped); R_D*, R_N* ∈ linspace(0, 20, 4) without the NaN-producing 0.
  init={
    "log_A": tuple(np.linspace(0, 25, 5)),
    "log_B": tuple(np.linspace(0, 25, 5)),
    "log_E": tuple(np.linspace(-1, 1, 4)),
    "alpha": (2 / 3, 4 / 3),
    "beta": (2 / 3, 4 / 3),
    "log_R_D": tuple(np.log([20 / 3, 40 / 3, 20])),
    "log_R_N": tuple(np.log([20 / 3, 40 / 3, 20])),
  },
  published={
    "c4": {
      "A": math.exp(6.255414),
      "B": math.exp(7.3049974),
      "E": math.exp(0.6254804),
      "alpha": 0.3526596,
      "beta": 0.3526596,
      "R_D": 15.387756,
      "R_N": 5.309743,
    }
  },
)


# --- ScaleBench law families (arXiv 2604.22753; PlanarG/active-sl benchmark/dataset/*/laws.py) --------
# One law per task, as the paper's code writes it (its sl_ id beside each), fitted like the paper's
# fitter: least squares on the linear loss inside the paper's parameter box (PARAM_BOUNDS there).

_CLIP = 50.0  # the paper's _EXP_CLIP: exponents clipped so a start far off does not overflow


def _box_init(bounds: Mapping[str, tuple[float, float]], names: Sequence[str]) -> dict[str, tuple[float, ...]]:
  """A two-point start grid per parameter at a quarter and three quarters of its box."""
  return {n: (0.75 * bounds[n][0] + 0.25 * bounds[n][1], 0.25 * bounds[n][0] + 0.75 * bounds[n][1]) for n in names}


def _farseer(p, x):
  # Farseer (Li et al. 2025) as ScaleBench farseer sl_1: exp(s·N^q + S) + exp(B·N^b + Q)·D^(−exp(A·N^a + E)).
  n, d = x["params"], x["tokens"]
  term1 = jnp.exp(jnp.clip(p["s"] * n ** p["q"] + p["S"], -_CLIP, _CLIP))
  slope = jnp.exp(jnp.clip(p["A"] * n ** p["a"] + p["E"], -_CLIP, _CLIP))
  log_term2 = jnp.clip(jnp.clip(p["B"] * n ** p["b"] + p["Q"], -_CLIP, _CLIP) - slope * jnp.log(d), -_CLIP, _CLIP)
  return term1 + jnp.exp(log_term2)


_FARSEER_BOUNDS = {  # ScaleBench farseer PARAM_BOUNDS["sl_1"]
  "E": (1.0, 6.0), "s": (-1.0, 0.3), "q": (0.01, 0.5), "S": (-1.0, 1.0), "B": (10.0, 1000.0),
  "b": (-0.6, -0.01), "Q": (-5.0, 1.0), "A": (-5.0, 1.0), "a": (0.001, 0.25),
}  # fmt: skip

FARSEER = Law(
  name="farseer",
  formula="L(N, D) = exp(s·N^q + S) + exp(B·N^b + Q)·D^(−exp(A·N^a + E)) (Farseer; ScaleBench farseer sl_1)",
  params=("E", "s", "q", "S", "B", "b", "Q", "A", "a"),
  columns=("params", "tokens"),
  predict=_farseer,
  init=_box_init(_FARSEER_BOUNDS, ("E", "s", "q", "S", "B", "b", "Q", "A", "a")),
  bounds=_FARSEER_BOUNDS,
  residual="linear",
  delta=None,
  # The notebook's fit quoted beside the paper's bounds (farseer laws.py).
  published={
    "scalebench": {
      "E": 3.1333,
      "s": -0.06247,
      "q": 0.13,
      "S": 0.12849,
      "B": 230.734,
      "b": -0.1729,
      "Q": -1.5442,
      "A": -1.6656,
      "a": 0.0459,
    }
  },  # fmt: skip
)


def _data_constrained_floor(p, x):
  # ScaleBench data_constrained sl_1: A/N^α + B/D^β + E·U^γ·N^δ.
  n, d, u = x["params"], x["tokens"], x["unique_tokens"]
  return p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"] + p["E"] * u ** p["gamma"] * n ** p["delta"]


_DATA_CONSTRAINED_BOUNDS = {  # ScaleBench data_constrained PARAM_BOUNDS["sl_1"]
  "A": (1e-3, 1e9), "alpha": (0.05, 2.0), "B": (1e-3, 1e8), "beta": (0.05, 2.0), "E": (-100.0, 200.0),
  "gamma": (-0.5, 0.5), "delta": (-0.5, 0.5),
}  # fmt: skip

DATA_CONSTRAINED_FLOOR = Law(
  name="data_constrained_floor",
  formula="L(N, D, U) = A/N^α + B/D^β + E·U^γ·N^δ (ScaleBench data_constrained sl_1)",
  params=("A", "alpha", "B", "beta", "E", "gamma", "delta"),
  columns=("params", "tokens", "unique_tokens"),
  predict=_data_constrained_floor,
  init=_box_init(_DATA_CONSTRAINED_BOUNDS, ("A", "alpha", "B", "beta", "E", "gamma", "delta")),
  bounds=_DATA_CONSTRAINED_BOUNDS,
  residual="linear",
  delta=None,
)


def _vocab_power(p, x):
  # ScaleBench vocab sl_1: c0 + A·V^b·P^e·D^g, P non-vocabulary parameters, D characters.
  return p["c0"] + p["A"] * x["vocab_size"] ** p["b"] * x["params"] ** p["e"] * x["characters"] ** p["g"]


_VOCAB_BOUNDS = {"c0": (-100.0, 100.0), "A": (-1e4, 1e4), "b": (-5.0, 5.0), "e": (-5.0, 5.0), "g": (-5.0, 5.0)}

VOCAB_POWER = Law(
  name="vocab_power",
  formula="L(P, V, D) = c0 + A·V^b·P^e·D^g (ScaleBench vocab sl_1; unigram-normalised loss)",
  params=("c0", "A", "b", "e", "g"),
  columns=("params", "vocab_size", "characters"),
  predict=_vocab_power,
  init=_box_init(_VOCAB_BOUNDS, ("c0", "A", "b", "e", "g")),
  bounds=_VOCAB_BOUNDS,
  residual="linear",
  delta=None,
)


def _parallel_power(p, x):
  # ScaleBench parallel sl_2 (ParScale, Chen et al. 2025): c0 + cN·N^−α + cS·S^−β, S parallel streams.
  return p["c0"] + p["cN"] * x["params"] ** -p["alpha"] + p["cS"] * x["parallel_size"] ** -p["beta"]


_PARALLEL_BOUNDS = {"c0": (-5.0, 5.0), "cN": (0.0, 500.0), "alpha": (0.0, 2.0), "cS": (-50.0, 50.0), "beta": (0.0, 2.0)}

PARALLEL_POWER = Law(
  name="parallel_power",
  formula="L(N, S) = c0 + cN·N^−α + cS·S^−β (ScaleBench parallel sl_2)",
  params=("c0", "cN", "alpha", "cS", "beta"),
  columns=("params", "parallel_size"),
  predict=_parallel_power,
  init=_box_init(_PARALLEL_BOUNDS, ("c0", "cN", "alpha", "cS", "beta")),
  bounds=_PARALLEL_BOUNDS,
  residual="linear",
  delta=None,
  published={"scalebench_pile": {"c0": 1.364, "cN": 117.8, "alpha": 0.261, "cS": 0.121, "beta": 0.399}},
)

_LR_BSZ_TERMS = (
  (),
  (0,),
  (1,),
  (2,),
  (3,),
  (0, 0),
  (1, 1),
  (2, 2),
  (3, 3),
  (0, 1),
  (0, 2),
  (0, 3),
  (1, 2),
  (1, 3),
  (2, 3),
)
_LR_BSZ_NAMES = tuple(f"w{i}" for i in range(len(_LR_BSZ_TERMS)))


def _lr_bsz_poly(p, x):
  # ScaleBench lr_bsz sl_1: ln L = a degree-2 polynomial in z = (ln lr, ln bsz, ln D, ln N).
  z = (jnp.log(x["lr"]), jnp.log(x["batch_size"]), jnp.log(x["tokens"]), jnp.log(x["params"]))
  out = 0.0 * z[0]
  for name, term in zip(_LR_BSZ_NAMES, _LR_BSZ_TERMS, strict=True):
    out = out + p[name] * functools.reduce(lambda a, i: a * z[i], term, 1.0)
  return out


_LR_BSZ_BOUNDS = {  # ScaleBench lr_bsz PARAM_BOUNDS["sl_1"]: bias, 4 linear, 10 quadratic
  name: (-15.0, 15.0) if i == 0 else (-0.35, 0.35) if i < 5 else (-0.025, 0.025) for i, name in enumerate(_LR_BSZ_NAMES)
}

LR_BSZ_POLY = Law(
  name="lr_bsz_poly",
  formula="ln L = Σ w·(1, z, z⊗z) over z = (ln lr, ln bsz, ln D, ln N) (ScaleBench lr_bsz sl_1)",
  params=_LR_BSZ_NAMES,
  columns=("lr", "batch_size", "tokens", "params"),
  log_predict=_lr_bsz_poly,
  init={name: (0.0,) for name in _LR_BSZ_NAMES},
  bounds=_LR_BSZ_BOUNDS,
  residual="linear",
  delta=None,
)


def _sparsity_power(p, x):
  # ScaleBench sparsity sl_4: exp(d1)·P^−a + exp(d2)·N_act^−b + exp(d3).
  return (
    jnp.exp(p["d1"]) * x["sparsity"] ** -p["a"] + jnp.exp(p["d2"]) * x["active_params"] ** -p["b"] + jnp.exp(p["d3"])
  )


_SPARSITY_BOUNDS = {"d1": (-5.0, 5.0), "a": (0.01, 3.0), "d2": (-5.0, 5.0), "b": (0.01, 3.0), "d3": (-5.0, 5.0)}

SPARSITY_POWER = Law(
  name="sparsity_power",
  formula="L(P, N_act) = e^d1·P^−a + e^d2·N_act^−b + e^d3 (ScaleBench sparsity sl_4)",
  params=("d1", "a", "d2", "b", "d3"),
  columns=("sparsity", "active_params"),
  predict=_sparsity_power,
  init=_box_init(_SPARSITY_BOUNDS, ("d1", "a", "d2", "b", "d3")),
  bounds=_SPARSITY_BOUNDS,
  residual="linear",
  delta=None,
)


LAWS: dict[str, Law] = {
  law.name: law
  for law in (
    CHINCHILLA,
    KRAJEWSKI2024,
    LUDZIEJEWSKI2025,
    WANG2024,
    CLARK2022,
    COMPUTE,
    DOWNSTREAM_POWER,
    DOWNSTREAM_CEILING,
    DOWNSTREAM_TPR,
    GADRE2024,
    GADRE2024_ERROR,
    MUENNIGHOFF2023,
    FARSEER,
    DATA_CONSTRAINED_FLOOR,
    VOCAB_POWER,
    PARALLEL_POWER,
    LR_BSZ_POLY,
    SPARSITY_POWER,
  )
}


def get(name: str) -> Law:
  if name not in LAWS:
    raise ValueError(f"law: unknown {name!r}; expected one of {', '.join(LAWS)}")
  return LAWS[name]
