"""Transformer building blocks: initialisers, norms, RoPE, causal attention, the FFN."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mixlaws.config import ModelConfig
from mixlaws.models import grouped_matmul


def dtype(name: str) -> jnp.dtype:
  return jnp.dtype(name)


def param(
  rngs: nnx.Rngs, cfg: ModelConfig, shape: Sequence[int], fan_in: int, names: tuple[str | None, ...]
) -> nnx.Param:
  """A truncated-normal weight, std = init_scale / sqrt(fan_in).

  Fedus et al. 2022 §2.4 and llm-random's init_truncated_normal (lizrd/core/initialization.py L39-40) use
  std = sqrt(s / fan_in): their s = 0.1 is init_scale = sqrt(0.1) here (see ModelConfig.init_scale).
  """
  init = jax.nn.initializers.truncated_normal(cfg.init_scale / math.sqrt(fan_in))
  return nnx.Param(nnx.with_partitioning(init, names)(rngs.params(), tuple(shape), dtype(cfg.param_dtype)))


def norm(cfg: ModelConfig, rngs: nnx.Rngs) -> nnx.Module:
  """Pre-norm of the configured type; statistics in float32, output in the compute dtype."""
  scale = nnx.with_partitioning(nnx.initializers.ones, ("embed",))
  common = dict(epsilon=cfg.norm_eps, dtype=dtype(cfg.compute_dtype), param_dtype=dtype(cfg.param_dtype), rngs=rngs)
  if cfg.norm == "rmsnorm":
    return nnx.RMSNorm(cfg.d_model, scale_init=scale, **common)
  bias = nnx.with_partitioning(nnx.initializers.zeros, ("embed",))
  return nnx.LayerNorm(cfg.d_model, scale_init=scale, bias_init=bias, **common)


def rope(x_bthk: jax.Array, theta: float) -> jax.Array:
  """Rotary position embedding in float32, pairing feature i with i + K/2 (Su et al. 2021; llm-random RoPE).

  Written by hand: neither JAX nor Flax ships a RoPE function.
  """
  t, k = x_bthk.shape[1], x_bthk.shape[3]
  inv_freq = theta ** (-jnp.arange(0, k, 2, dtype=jnp.float32) / k)  # θ_i = base^(-2i/K), Su et al. 2021
  angles_tk = jnp.arange(t, dtype=jnp.float32)[:, None] * inv_freq[None, :]
  sin, cos = jnp.sin(angles_tk)[None, :, None, :], jnp.cos(angles_tk)[None, :, None, :]
  x1, x2 = jnp.split(x_bthk.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x_bthk.dtype)


class Attention(nnx.Module):
  """Causal multi-head self-attention without biases; logits and softmax in float32."""

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    d, h, k = cfg.d_model, cfg.n_heads, cfg.head_dim
    self.cfg = cfg
    self.q = param(rngs, cfg, (d, h, k), d, ("embed", "heads", "head_dim"))
    self.k = param(rngs, cfg, (d, h, k), d, ("embed", "heads", "head_dim"))
    self.v = param(rngs, cfg, (d, h, k), d, ("embed", "heads", "head_dim"))
    self.o = param(rngs, cfg, (h, k, d), h * k, ("heads", "head_dim", "embed"))

  def __call__(self, x_btd: jax.Array) -> jax.Array:
    b, t, d = x_btd.shape
    h, k = self.cfg.n_heads, self.cfg.head_dim
    cdt = x_btd.dtype
    # 2-D matmuls: XLA:CPU lays out their gradients without the transposes a 3-D einsum costs.
    x_sd = x_btd.reshape(b * t, d)
    q_bthk, k_bthk, v_bthk = (
      (x_sd @ w[...].astype(cdt).reshape(d, h * k)).reshape(b, t, h, k) for w in (self.q, self.k, self.v)
    )
    if self.cfg.positional == "rope":
      q_bthk, k_bthk = rope(q_bthk, self.cfg.rope_theta), rope(k_bthk, self.cfg.rope_theta)
    # jax.nn.dot_product_attention computes the logits and the softmax in float32 for bf16 inputs.
    out_bthk = jax.nn.dot_product_attention(q_bthk, k_bthk, v_bthk, is_causal=True)
    return (out_bthk.reshape(b * t, h * k) @ self.o[...].astype(cdt).reshape(h * k, d)).reshape(b, t, d)


def activate(h_f: jax.Array, gate_f: jax.Array | None, activation: str) -> jax.Array:
  """The FFN nonlinearity; SwiGLU is silu(gate) · up (Shazeer 2020, GLU variants)."""
  if activation == "swiglu":
    return jax.nn.silu(gate_f) * h_f
  if activation == "gelu":
    return jax.nn.gelu(h_f, approximate=False)
  return jax.nn.relu(h_f)


class Mlp(nnx.Module):
  """Dense FFN of hidden width `width` (the dense FFN, or the shared experts fused into one)."""

  def __init__(self, cfg: ModelConfig, width: int, *, rngs: nnx.Rngs):
    d = cfg.d_model
    self.activation = cfg.activation
    self.up = param(rngs, cfg, (d, width), d, ("embed", "mlp"))
    self.gate = param(rngs, cfg, (d, width), d, ("embed", "mlp")) if cfg.activation == "swiglu" else None
    self.down = param(rngs, cfg, (width, d), width, ("mlp", "embed"))

  def __call__(self, x: jax.Array) -> jax.Array:
    """(…, D) → (…, D), computed on the tokens flattened to 2-D (a third of the 3-D einsum's backward time on CPU)."""
    cdt = x.dtype
    x_sd = x.reshape(-1, x.shape[-1])
    h_sf = x_sd @ self.up[...].astype(cdt)
    gate_sf = x_sd @ self.gate[...].astype(cdt) if self.gate is not None else None
    return (activate(h_sf, gate_sf, self.activation) @ self.down[...].astype(cdt)).reshape(x.shape)


class Experts(nnx.Module):
  """E expert FFNs of width d_ff / G, stored stacked so a batched or ragged matmul runs them all."""

  def __init__(self, cfg: ModelConfig, n_experts: int, width: int, *, rngs: nnx.Rngs, down_fan_in: int = 0):
    """`down_fan_in`: the down projection's init fan-in; 0 → `width` (llm-random uses n_experts · width)."""
    d = cfg.d_model
    self.activation = cfg.activation
    self.up = param(rngs, cfg, (n_experts, d, width), d, ("expert", "embed", "mlp"))
    gated = cfg.activation == "swiglu"
    self.gate = param(rngs, cfg, (n_experts, d, width), d, ("expert", "embed", "mlp")) if gated else None
    self.down = param(rngs, cfg, (n_experts, width, d), down_fan_in or width, ("expert", "mlp", "embed"))

  @property
  def n_experts(self) -> int:
    return self.up.shape[0]

  def batched(self, x_ecd: jax.Array, weight_ec: jax.Array | None = None) -> jax.Array:
    """Each expert on its own capacity buffer: (E, C, D) → (E, C, D), row c scaled by weight_ec[e, c] if given.

    The weight scales the hidden activations, which the linear down projection turns into the same
    scaled output; the backward pass then needs no (E, C, D) output kept for the weight's gradient.
    """
    cdt = x_ecd.dtype
    h_ecf = jnp.einsum("ecd,edf->ecf", x_ecd, self.up[...].astype(cdt))
    gate_ecf = jnp.einsum("ecd,edf->ecf", x_ecd, self.gate[...].astype(cdt)) if self.gate is not None else None
    a_ecf = activate(h_ecf, gate_ecf, self.activation)
    if weight_ec is not None:
      a_ecf = a_ecf * weight_ec[..., None].astype(cdt)
    return jnp.einsum("ecf,efd->ecd", a_ecf, self.down[...].astype(cdt))

  def ragged(self, x_ad: jax.Array, group_sizes_e: jax.Array) -> jax.Array:
    """Rows sorted by expert, `group_sizes_e` rows per expert, through `jax.lax.ragged_dot`: (A, D) → (A, D)."""
    cdt = x_ad.dtype
    h_af = grouped_matmul.ragged_dot(x_ad, self.up[...].astype(cdt), group_sizes_e)
    gate_af = (
      grouped_matmul.ragged_dot(x_ad, self.gate[...].astype(cdt), group_sizes_e) if self.gate is not None else None
    )
    return grouped_matmul.ragged_dot(
      activate(h_af, gate_af, self.activation), self.down[...].astype(cdt), group_sizes_e
    )
