"""The selection maths of mixlaws.fit.design: Sherman-Morrison updates, classic optimal designs, fits."""

import jax.numpy as jnp
import numpy as np
import pytest

from mixlaws.fit import design, laws

LINE = laws.Law(
  name="line",
  formula="y = a + b·x",
  params=("a", "b"),
  columns=("x",),
  init={"a": (0.0,), "b": (0.0,)},
  predict=lambda p, x: p["a"] + p["b"] * x["x"],
  bounds={"a": (-10.0, 10.0), "b": (-10.0, 10.0)},
  residual="linear",
  delta=None,
)


def test_greedy_variance_matches_a_direct_inverse():
  rng = np.random.default_rng(0)
  j_obs, j_cand, g = rng.normal(size=(6, 3)), rng.normal(size=(20, 3)), rng.normal(size=(4, 3))
  noise, prior = 0.3, np.full(3, 0.01)
  sigma = design.covariance(j_obs, noise, prior)
  chosen, after = design.greedy(sigma, g, j_cand, np.ones(20), noise, k=5, budget=np.inf)
  assert len(set(chosen)) == 5
  for step in range(5):
    rows = np.vstack([j_obs, j_cand[chosen[: step + 1]]])
    direct = np.linalg.inv(rows.T @ rows / noise + np.diag(prior))
    assert after[step] == pytest.approx(np.mean(np.einsum("tp,pq,tq->t", g, direct, g)), rel=1e-8)
  # Each greedy pick is the best single addition: no other candidate lowers the variance more.
  first = []
  for i in range(20):
    rows = np.vstack([j_obs, j_cand[i]])
    first.append(np.mean(np.einsum("tp,pq,tq->t", g, np.linalg.inv(rows.T @ rows / noise + np.diag(prior)), g)))
  assert chosen[0] == int(np.argmin(first))


def test_extrapolating_a_line_buys_the_ends_and_pays_attention_to_cost():
  # For predicting a straight line beyond the design region the optimal design sits at the extremes
  # (Atkinson, Donev & Tobias, Optimum Experimental Designs, §10.6 / Elfving's theorem).
  x = np.linspace(0.0, 1.0, 11)
  j = np.stack([np.ones_like(x), x], axis=1)
  g = np.array([[1.0, 3.0]])  # d(a + 3b)/dθ: the line at x = 3
  sigma = design.covariance(j[[3, 7]], 0.01, np.full(2, 1e-6))
  chosen, _ = design.greedy(sigma, g, j, np.ones(11), 0.01, k=2, budget=np.inf)
  assert sorted(chosen) == [0, 10]
  # Both ends costing 100x their neighbours: per unit cost the neighbours win.
  cost = np.ones(11)
  cost[[0, 10]] = 100.0
  chosen, _ = design.greedy(sigma, g, j, cost, 0.01, k=2, budget=np.inf)
  assert sorted(chosen) == [1, 9]
  # A budget below every price buys nothing.
  assert design.greedy(sigma, g, j, cost, 0.01, k=3, budget=0.5) == ([], [])


def test_fit_recovers_a_scalebench_law_from_noise_free_points():
  law = laws.PARALLEL_POWER
  truth = law.published["scalebench_pile"]
  grid = np.array([(n, s) for n in (5e8, 1e9, 2e9, 4e9) for s in (1, 2, 4, 8)])
  pool = {"params": grid[:, 0], "parallel_size": grid[:, 1]}
  pool["loss"] = laws.evaluate(law, truth, pool)
  sp = design.space(law, pool, grid[:, 0])
  theta, mse = design.fit(sp, np.ones(len(grid), bool), np.random.default_rng(0), starts=16)
  assert mse < 1e-12
  assert design.predict(law, theta, pool) == pytest.approx(pool["loss"], rel=1e-6)


def test_propose_starts_cheap_then_ranks_by_variance_per_cost():
  x = np.linspace(0.0, 1.0, 21)
  cost = 1.0 + 10 * x
  pool = {"x": x, "loss": np.where(x <= 0.25, 1.0 + 2.0 * x, np.nan)}
  sp = design.space(LINE, pool, cost)
  rng = np.random.default_rng(0)
  target = {"x": np.array([2.0])}
  few = design.propose(sp, np.arange(21) < 2, target, 3, np.inf, rng, init_share=1.0)
  assert few.reason == "cheapest" and few.indices == [2, 3, 4]  # 2.5 × 2 parameters = 5 runs first
  observed = x <= 0.25
  prop = design.propose(sp, observed, target, 3, np.inf, rng)
  assert prop.reason == "variance" and prop.theta == pytest.approx([1.0, 2.0], abs=1e-6)
  assert not observed[prop.indices].any()
  assert prop.variance_after[-1] < prop.variance_now
  assert max(prop.indices) == 20  # the far end is worth its price for an extrapolation


def test_space_rejects_a_pool_without_the_laws_columns():
  with pytest.raises(ValueError, match="lacks column"):
    design.space(LINE, {"z": np.ones(3)}, np.ones(3))
  with pytest.raises(ValueError, match="positive cost"):
    design.space(LINE, {"x": np.ones(3)}, np.zeros(3))


def test_scalebench_laws_match_the_papers_formulas():
  # Each law against its formula written out in numpy at one point.
  n, d, u, v, s, lr, b = 1e9, 2e10, 5e9, 32000.0, 4.0, 3e-3, 256.0
  farseer = laws.FARSEER.published["scalebench"]
  f = farseer
  expected = np.exp(f["s"] * n ** f["q"] + f["S"]) + np.exp(f["B"] * n ** f["b"] + f["Q"]) * d ** -np.exp(
    f["A"] * n ** f["a"] + f["E"]
  )
  assert laws.evaluate(laws.FARSEER, f, {"params": [n], "tokens": [d]})[0] == pytest.approx(expected, rel=1e-10)
  p = {"A": 5e5, "alpha": 0.8, "B": 1e5, "beta": 0.56, "E": 12.0, "gamma": -0.04, "delta": -0.03}
  want = p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"] + p["E"] * u ** p["gamma"] * n ** p["delta"]
  got = laws.evaluate(laws.DATA_CONSTRAINED_FLOOR, p, {"params": [n], "tokens": [d], "unique_tokens": [u]})
  assert got[0] == pytest.approx(want, rel=1e-10)
  p = {"c0": 0.1, "A": 3.0, "b": 0.05, "e": -0.1, "g": -0.08}
  got = laws.evaluate(laws.VOCAB_POWER, p, {"params": [n], "vocab_size": [v], "characters": [d]})
  assert got[0] == pytest.approx(0.1 + 3.0 * v**0.05 * n**-0.1 * d**-0.08, rel=1e-10)
  p = {"d1": 0.5, "a": 0.3, "d2": 0.2, "b": 0.4, "d3": 0.6}
  got = laws.evaluate(laws.SPARSITY_POWER, p, {"sparsity": [s], "active_params": [0.5]})
  assert got[0] == pytest.approx(np.exp(0.5) * s**-0.3 + np.exp(0.2) * 0.5**-0.4 + np.exp(0.6), rel=1e-10)
  w = np.linspace(-0.02, 0.02, 15)
  w[0] = 1.0
  z = np.log([lr, b, d, n])
  feats = [1.0, *z, *(z**2), z[0] * z[1], z[0] * z[2], z[0] * z[3], z[1] * z[2], z[1] * z[3], z[2] * z[3]]
  p = {f"w{i}": w[i] for i in range(15)}
  got = laws.evaluate(laws.LR_BSZ_POLY, p, {"lr": [lr], "batch_size": [b], "tokens": [d], "params": [n]})
  assert got[0] == pytest.approx(np.exp(np.dot(w, feats)), rel=1e-10)
  assert float(jnp.asarray(got[0])) > 0
