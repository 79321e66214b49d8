"""The decoder-only LM: embeddings, pre-norm blocks stacked and scanned over a `layers` axis, logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mixlaws import sharding
from mixlaws.config import ModelConfig, MoEConfig, moe_layer_mask
from mixlaws.models.layers import Attention, Mlp, dtype, norm, param
from mixlaws.models.moe import MoE

# Router statistics and auxiliary losses, the same keys for dense models (all zero) and MoE models.
AUX_KEYS = ("load_balance_loss", "z_loss", "dropped_frac", "load_cv", "router_entropy")
PER_LAYER = "per_layer/"  # aux[PER_LAYER + key]: shape (L,), one entry per MoE layer in depth order

_BTD = ("batch", "seq", "embed")


class Block(nnx.Module):
  """Pre-norm block: x + attn(norm(x)), then x + ffn(norm(x)); the FFN is dense or MoE."""

  def __init__(self, cfg: ModelConfig, moe: MoEConfig, is_moe: bool, *, rngs: nnx.Rngs):
    self.is_moe = is_moe
    self.attn_norm = norm(cfg, rngs)
    self.attn = Attention(cfg, rngs=rngs)
    self.ffn_norm = norm(cfg, rngs)
    self.ffn = MoE(cfg, moe, rngs=rngs) if is_moe else Mlp(cfg, cfg.d_ff, rngs=rngs)

  def __call__(self, x_btd: jax.Array, train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
    x_btd = x_btd + self.attn(self.attn_norm(x_btd))
    h_btd = self.ffn_norm(x_btd)
    if self.is_moe:
      y_btd, stats = self.ffn(h_btd, train)
    else:
      y_btd, stats = self.ffn(h_btd), {}
    return sharding.constrain(x_btd + y_btd, _BTD), stats


class Unit(nnx.Module):
  """The repeating run of blocks of one stack, e.g. (dense, MoE) for moe.layers = alternate."""

  def __init__(self, cfg: ModelConfig, moe: MoEConfig, kinds: tuple[bool, ...], *, rngs: nnx.Rngs):
    self.remat = cfg.remat == "block"
    self.blocks = nnx.List([Block(cfg, moe, is_moe, rngs=rngs) for is_moe in kinds])

  def __call__(self, x_btd: jax.Array, train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
    def run(block: Block, x: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
      return block(x, train)

    if self.remat:
      run = nnx.remat(run)  # the backward pass recomputes each block instead of storing its activations
    per_block = []
    for block in self.blocks:
      x_btd, stats = run(block, x_btd)
      if stats:
        per_block.append(stats)
    return x_btd, {k: jnp.stack([s[k] for s in per_block]) for k in AUX_KEYS} if per_block else {}


class Stack(nnx.Module):
  """`repeats` copies of a unit with parameters stacked on a leading `layers` axis, run by `nnx.scan`.

  One traced unit serves every repeat, so compile time does not grow with depth.
  """

  def __init__(self, cfg: ModelConfig, moe: MoEConfig, kinds: tuple[bool, ...], repeats: int, *, rngs: nnx.Rngs):
    @nnx.split_rngs(splits=repeats)
    @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def create(r: nnx.Rngs) -> Unit:
      return Unit(cfg, moe, kinds, rngs=r)

    self.units = create(rngs)

  def __call__(self, x_btd: jax.Array, train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
    @nnx.scan(in_axes=(0, nnx.Carry), out_axes=(nnx.Carry, 0), transform_metadata={nnx.PARTITION_NAME: "layers"})
    def step(unit: Unit, x: jax.Array):
      return unit(x, train)

    x_btd, stats = step(self.units, x_btd)
    return x_btd, {k: v.reshape(-1) for k, v in stats.items()}  # (repeats, MoE blocks per unit) → depth order


def stack_plan(mask: tuple[bool, ...]) -> list[tuple[tuple[bool, ...], int]]:
  """Splits a per-block MoE mask into (unit, repeats) runs, each unit as short as covers the most blocks.

  all → [((True,), n)]; second_half → [((False,), n//2), ((True,), n - n//2)];
  alternate → [((False, True), n//2)] plus ((False,), 1) when n is odd.
  """
  plan, i, n = [], 0, len(mask)
  while i < n:
    best = None
    for period in (1, 2):
      unit = mask[i : i + period]
      if len(unit) < period:
        continue
      repeats = 1
      while mask[i + repeats * period : i + (repeats + 1) * period] == unit:
        repeats += 1
      if best is None or repeats * period > best[0] * len(best[1]):
        best = (repeats, unit)
    repeats, unit = best
    plan.append((unit, repeats))
    i += repeats * len(unit)
  return plan


# Added to the logits of padded vocabulary entries: finite, so p·log p stays 0 where p underflows to 0.
PADDED_LOGIT = -1e9


def padded_vocab_size(vocab_size: int, multiple: int) -> int:
  """The vocabulary rounded up to a multiple (128 × the tensor axis: lane-aligned and evenly split)."""
  return -(-vocab_size // multiple) * multiple


def _padded(weight: nnx.Param, axis: int, size: int) -> nnx.Param:
  """The weight with zero rows (or columns) appended along `axis` up to `size`.

  The real entries are drawn at the real shape, so a padded model starts from the same function as
  an unpadded one (same seed) and the padding changes no loss.
  """
  value = weight[...]
  if value.shape[axis] == size:
    return weight
  widths = [(0, 0)] * value.ndim
  widths[axis] = (0, size - value.shape[axis])
  return nnx.Param(jnp.pad(value, widths), **weight.get_metadata())


class Transformer(nnx.Module):
  """Decoder-only LM for `ModelConfig` + `MoEConfig`; safe to build outside any mesh.

  `vocab_multiple` pads the embedding and unembedding to a multiple of it (zero rows); the logits
  then have the padded width, with the padded entries masked to PADDED_LOGIT.
  `model(tokens_bt, train)` returns float32 logits (B, T, V) and `aux`: the AUX_KEYS scalars
  (unweighted losses and statistics, each a mean over MoE layers; zeros for a dense model) and,
  under PER_LAYER + key, the per-MoE-layer vectors (shape (0,) for a dense model).
  """

  def __init__(self, cfg: ModelConfig, moe: MoEConfig, *, rngs: nnx.Rngs, vocab_multiple: int = 1):
    self.cfg = cfg
    d = cfg.d_model
    self.padded_vocab = padded_vocab_size(cfg.vocab_size, vocab_multiple)
    mask = moe_layer_mask(cfg.n_layers, moe.layers) if moe.is_moe else (False,) * cfg.n_layers
    # Parameters get their shardings when a jitted init places them; eager sharding would need a mesh here.
    with nnx.use_eager_sharding(False):
      # A lookup row has fan-in 1, so embedding tables start with std = init_scale (llm-random).
      self.embed = _padded(param(rngs, cfg, (cfg.vocab_size, d), 1, ("vocab", "embed")), 0, self.padded_vocab)
      # The position axis stays unnamed (replicated): the param rule table has no sequence axis.
      self.positions = param(rngs, cfg, (cfg.seq_len, d), 1, (None, "embed")) if cfg.positional == "learned" else None
      self.stacks = nnx.List([Stack(cfg, moe, unit, repeats, rngs=rngs) for unit, repeats in stack_plan(mask)])
      self.final_norm = norm(cfg, rngs)
      unembed = None if cfg.tied_embeddings else param(rngs, cfg, (d, cfg.vocab_size), d, ("embed", "vocab"))
      self.unembed = None if unembed is None else _padded(unembed, 1, self.padded_vocab)

  def __call__(self, tokens_bt: jax.Array, train: bool = True) -> tuple[jax.Array, dict[str, jax.Array]]:
    cfg = self.cfg
    cdt = dtype(cfg.compute_dtype)
    x_btd = jnp.take(self.embed[...], tokens_bt, axis=0).astype(cdt)
    if self.positions is not None:
      t = tokens_bt.shape[1]
      if t > cfg.seq_len:
        raise ValueError(f"model.seq_len: learned positions cover {cfg.seq_len} tokens, got sequences of {t}")
      x_btd = x_btd + self.positions[...][:t].astype(cdt)
    x_btd = sharding.constrain(x_btd, _BTD)
    per_layer = {k: [] for k in AUX_KEYS}
    for stack in self.stacks:
      x_btd, stats = stack(x_btd, train)
      for k, v in stats.items():
        per_layer[k].append(v)
    x_btd = self.final_norm(x_btd)
    w_dv = self.embed[...].T if self.unembed is None else self.unembed[...]
    logits_btv = jnp.einsum("btd,dv->btv", x_btd, w_dv.astype(cdt), preferred_element_type=jnp.float32)
    if self.padded_vocab > cfg.vocab_size:  # padded entries get no probability, in the loss and in eval scoring
      logits_btv = logits_btv + jnp.where(jnp.arange(self.padded_vocab) < cfg.vocab_size, 0.0, PADDED_LOGIT)
    aux = {}
    for k, vs in per_layer.items():
      v = jnp.concatenate(vs) if vs else jnp.zeros((0,), jnp.float32)
      aux[k] = jnp.mean(v) if vs else jnp.zeros((), jnp.float32)
      aux[PER_LAYER + k] = v
    return sharding.constrain(logits_btv, ("batch", "seq", "vocab")), aux
