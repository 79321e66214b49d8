"""An independent NumPy reference of every router, and golden one-step losses of a tiny model per router.

The reference is written from the papers' equations and llm-random's code, token by token in float64
with loops, sharing nothing with mixlaws.models but the weights:
- token choice (Fedus et al. 2022 Eq. 1-2; llm-random moe_layers/moe_gating.py TokenGating: softmax over
  experts, top-k of the probabilities, output = Σ_picks p · expert(x), token_choice.py `merge`);
- switch: the same with k = 1;
- expert choice (Zhou et al. 2022; Krajewski et al. 2024 App. A; llm-random ExpertGating with
  softmax_over="experts", group_by_batch: each expert takes its top round(G/(E·G) · group) tokens of
  every group of sequences at one position; expert_choice.py adds a LayerNorm after the merge);
- mixture of tokens (Antoniak et al. 2023 §3; llm-random continuous_moe.py: merge weights = softmax over
  the group's tokens per expert, emit weights = merge weights).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mixlaws import models
from mixlaws.models.moe import MoE

B, T, D, FF = 8, 4, 16, 32


def _act(h, g, activation):
  if activation == "swiglu":
    return g / (1 + np.exp(-g)) * h
  if activation == "relu":
    return np.maximum(h, 0)
  raise AssertionError(activation)


def _expert(w, e, x_d, activation):
  """Expert e's FFN on one token (float64)."""
  gate = x_d @ w["gate"][e] if w["gate"] is not None else None
  return _act(x_d @ w["up"][e], gate, activation) @ w["down"][e]


def _softmax(z):
  z = z - z.max()
  return np.exp(z) / np.exp(z).sum()


def _rmsnorm(y_d, eps):
  return y_d / np.sqrt(np.mean(y_d**2) + eps)


def reference(x_btd, w, moe, activation, norm_eps):
  """The MoE layer's output for every token, one token (or one group) at a time."""
  b, t, d = x_btd.shape
  n_experts = moe.n_experts
  out = np.zeros((b, t, d))
  logits_bte = np.einsum("btd,de->bte", x_btd, w["router"])
  if moe.router in ("token_choice", "switch"):
    k = 1 if moe.router == "switch" else moe.top_k
    for i in range(b):
      for j in range(t):
        p = _softmax(logits_bte[i, j])
        picks = np.argsort(-p)[:k]
        out[i, j] = sum(p[e] * _expert(w, e, x_btd[i, j], activation) for e in picks)
    scale = n_experts / k if moe.output_scale == "unit_mean" else 1.0
    return out * scale
  g = moe.group_size
  if moe.router == "expert_choice":
    quota = round(moe.granularity / n_experts * g)
    for n in range(b // g):
      for j in range(t):
        rows = range(n * g, (n + 1) * g)
        p_ge = np.stack([_softmax(logits_bte[i, j]) for i in rows])
        for e in range(n_experts):
          for r in np.argsort(-p_ge[:, e], kind="stable")[:quota]:
            out[n * g + r, j] += p_ge[r, e] * _expert(w, e, x_btd[n * g + r, j], activation)
    if moe.output_scale == "unit_mean":
      out = out * moe.expansion_rate
    if moe.output_norm:  # RMSNorm of scale 1 (the materialised norm scales are ones)
      out = np.apply_along_axis(_rmsnorm, -1, out, norm_eps)
    return out
  for n in range(b // g):  # mixture of tokens
    for j in range(t):
      rows = list(range(n * g, (n + 1) * g))
      for e in range(n_experts):
        merge_g = _softmax(logits_bte[rows, j, e] / moe.temperature)
        y_d = _expert(w, e, merge_g @ x_btd[rows, j], activation)
        for r, i in enumerate(rows):
          out[i, j] += merge_g[r] * y_d
  return out


CASES = {
  "token_choice": ("moe.router=token_choice", "moe.expansion_rate=4", "moe.granularity=2"),
  "token_choice_unit_mean": ("moe.router=token_choice", "moe.expansion_rate=4", "moe.output_scale=unit_mean"),
  "switch": ("moe.router=switch", "moe.expansion_rate=4"),
  "expert_choice": ("moe.router=expert_choice", "moe.expansion_rate=4", "moe.granularity=2", "moe.group_size=4"),
  "expert_choice_unit_mean": (
    "moe.router=expert_choice",
    "moe.expansion_rate=4",
    "moe.group_size=8",
    "moe.output_scale=unit_mean",
    "moe.output_norm=false",
  ),  # fmt: skip
  "mixture_of_tokens": (
    "moe.router=mixture_of_tokens",
    "moe.expansion_rate=4",
    "moe.group_size=4",
    "moe.temperature=0.5",
  ),  # fmt: skip
}


def _cfg(tiny_config, case, *extra):
  return tiny_config(f"model.d_model={D}", "model.n_heads=1", f"model.d_ff={FF}", f"train.batch_size={B}",
                     "moe.capacity_factor=0", "moe.eval_capacity_factor=0", *CASES[case], *extra)  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_moe_forward_matches_the_numpy_reference(tiny_config, materialize, fast_jit, case):
  cfg = _cfg(tiny_config, case)
  layer = materialize(lambda: MoE(cfg.model, cfg.moe, rngs=nnx.Rngs(0)))
  # Router weights large enough that picks are decided by clear margins, not by float rounding.
  layer.router[...] = layer.router[...] * 3
  x = np.random.default_rng(1).standard_normal((B, T, D)).astype(np.float32)
  y, _ = fast_jit(lambda m, x: m(x, train=True))(layer, jnp.asarray(x))
  w = {name: np.asarray(getattr(layer.experts, name)[...], np.float64) for name in ("up", "down")}
  w["gate"] = np.asarray(layer.experts.gate[...], np.float64) if layer.experts.gate is not None else None
  w["router"] = np.asarray(layer.router[...], np.float64)
  expected = reference(x.astype(np.float64), w, cfg.moe, cfg.model.activation, cfg.model.norm_eps)
  assert np.abs(expected).mean() > 0.05
  np.testing.assert_allclose(np.asarray(y), expected, atol=1e-5, rtol=1e-5)


# Golden losses: the tiny model's loss on a fixed batch before and after one SGD step (lr 0.5), with
# NumPy-filled weights (`materialize`). Any change to the forward or backward pass of a router moves them.
# Recorded from this code at commit time (float32 on CPU); they pin behaviour, they are not from a paper.
GOLDEN = {
  "dense": (5.901022434234619, 5.464659690856934),
  "expert_choice": (6.31985330581665, 5.67567253112793),
  "mixture_of_tokens": (5.9684672355651855, 5.656202793121338),
  "switch": (5.9858269691467285, 5.671188831329346),
  "token_choice": (6.068894386291504, 5.654897689819336),
}
GOLDEN_CASES = {
  "dense": (),
  "token_choice": ("moe.router=token_choice", "moe.expansion_rate=4", "moe.granularity=2"),
  "switch": ("moe.router=switch", "moe.expansion_rate=4"),
  "expert_choice": ("moe.router=expert_choice", "moe.expansion_rate=4", "moe.group_size=4"),
  "mixture_of_tokens": ("moe.router=mixture_of_tokens", "moe.expansion_rate=4", "moe.group_size=4"),
}


def _one_step_losses(model, tokens):
  def loss_fn(model):
    logits, _ = model(tokens, train=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:]).mean()

  loss0, grads = nnx.value_and_grad(loss_fn)(model)
  params = nnx.state(model, nnx.Param)
  nnx.update(model, jax.tree.map(lambda p, g: p - 0.5 * g, params, grads))
  return loss0, loss_fn(model)


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_one_step_losses_of_a_tiny_model_are_golden(tiny_config, materialize, fast_jit, case):
  cfg = tiny_config("model.d_model=16", "model.n_heads=1", "model.n_layers=1", "model.d_ff=32",
                    "train.batch_size=8", "moe.capacity_factor=0", *GOLDEN_CASES[case])  # fmt: skip
  model = materialize(lambda: models.Transformer(cfg.model, cfg.moe, rngs=nnx.Rngs(0)))
  tokens = jnp.asarray(np.random.default_rng(2).integers(0, 259, (8, cfg.model.seq_len)), jnp.int32)
  losses = fast_jit(_one_step_losses)(model, tokens)
  np.testing.assert_allclose([float(v) for v in losses], GOLDEN[case], atol=1e-6, rtol=0)
