"""Parameter and training-FLOP counts, under the named conventions the papers use.

`Shape` holds the numbers counting needs. It is built from a run's config (exact integers that
equal the built model's parameter count) or directly from a paper's closed form, where d_model
and n_blocks may be real numbers (the compute-optimal searches of Krajewski et al. 2024 treat
them as continuous). Every count below is plain arithmetic, so both work.

Conventions (PAPERS.md §0.2):
- `krajewski2024`: N = total non-embedding params without the router, d²(8E+4)n for GELU experts;
  FLOPs/token = c_f·N_act + c_r·router params with c_f = 6, c_r = 14 (Eq. 10).
- `ludziejewski2025`: N_total / N_act include embedding and unembedding (Eq. 9/10), no router or
  norms; FLOPs/token = 6·N_act.
- `chinchilla`: Hoffmann et al. 2022 Appendix F forward count (embeddings, attention incl. the
  logits and softmax over the context, FFN, output logits) × 3 for training; params incl. embeddings.
- `kaplan`: Kaplan et al. 2020: N = non-embedding params; FLOPs/token = 6N + 6·n_layers·ctx·d_attn.
"""

from __future__ import annotations

import dataclasses

from mixlaws import budget
from mixlaws.config import Config, moe_layer_mask

# Krajewski et al. 2024, Eq. 10 and Appendix E: FLOPs per (active parameter, token) and per
# (router parameter, token).
C_F = 6
C_R = 14


@dataclasses.dataclass(frozen=True)
class Shape:
  """What the counts depend on. Floats are allowed for closed-form searches."""

  d_model: float
  n_layers: float
  d_ff: float  # dense FFN hidden width
  vocab_size: int
  seq_len: int
  attn_width: float  # n_heads · head_dim
  n_heads: float
  gated: bool  # SwiGLU: three FFN matrices instead of two
  n_experts: int = 1  # E·G routed experts per MoE layer; 1 → dense
  granularity: int = 1
  active_experts: float = 1.0  # routed experts applied per token (top_k, G for expert choice)
  n_moe_layers: float = 0
  n_shared_experts: int = 0
  norm_width: int = 1  # parameters per feature of one norm: 1 (RMSNorm) or 2 (LayerNorm)
  moe_output_norm: bool = False  # expert choice's extra norm before the MoE output
  tied_embeddings: bool = False
  learned_positions: bool = False

  @classmethod
  def from_config(cls, cfg: Config) -> Shape:
    m, moe = cfg.model, cfg.moe
    n_moe = sum(moe_layer_mask(m.n_layers, moe.layers)) if moe.is_moe else 0
    if moe.router == "expert_choice":
      active = moe.granularity  # each expert's quota gives a token G experts on average
    elif moe.router == "mixture_of_tokens":
      active = moe.n_experts / moe.group_size  # each expert processes one mixed token per group
    else:
      active = moe.top_k
    return cls(
      d_model=m.d_model,
      n_layers=m.n_layers,
      d_ff=m.d_ff,
      vocab_size=m.vocab_size,
      seq_len=m.seq_len,
      attn_width=m.n_heads * m.head_dim,
      n_heads=m.n_heads,
      gated=m.activation == "swiglu",
      n_experts=moe.n_experts,
      granularity=moe.granularity,
      active_experts=active,
      n_moe_layers=n_moe,
      n_shared_experts=moe.n_shared_experts if moe.is_moe else 0,
      norm_width=2 if m.norm == "layernorm" else 1,
      moe_output_norm=moe.is_moe and moe.router == "expert_choice" and moe.output_norm,
      tied_embeddings=m.tied_embeddings,
      learned_positions=m.positional == "learned",
    )

  @classmethod
  def paper(
    cls,
    d_model: float,
    n_blocks: float,
    expansion_rate: int = 1,
    granularity: int = 1,
    ffn: str = "gelu4",
    vocab_size: int = 50257,
    seq_len: int = 256,
  ) -> Shape:
    """A paper's idealised shape: every block MoE (when E·G > 1), heads of 64, G experts active.

    ffn: "gelu4" (two matrices of width 4·d, Krajewski et al. 2024) or "swiglu3" (three matrices
    of width 3·d, Ludziejewski et al. 2025).
    """
    gated = ffn == "swiglu3"
    n_experts = expansion_rate * granularity
    return cls(
      d_model=d_model,
      n_layers=n_blocks,
      d_ff=(3 if gated else 4) * d_model,
      vocab_size=vocab_size,
      seq_len=seq_len,
      attn_width=d_model,
      n_heads=d_model / 64,
      gated=gated,
      n_experts=n_experts,
      granularity=granularity,
      active_experts=granularity if n_experts > 1 else 1,
      n_moe_layers=n_blocks if n_experts > 1 else 0,
    )

  @property
  def ffn_matrices(self) -> int:
    return 3 if self.gated else 2


@dataclasses.dataclass(frozen=True)
class ParamCounts:
  """Parameters by component. `ffn` holds every dense FFN and expert; `ffn_active` those a token uses."""

  embedding: float  # token embedding (+ learned position table)
  unembedding: float  # output projection (0 when tied)
  attention: float
  ffn: float
  ffn_active: float
  router: float
  norms: float

  @property
  def total(self) -> float:
    return self.embedding + self.unembedding + self.attention + self.ffn + self.router + self.norms

  @property
  def active(self) -> float:
    return self.total - self.ffn + self.ffn_active

  @property
  def non_embedding(self) -> float:
    return self.total - self.embedding - self.unembedding

  @property
  def active_non_embedding(self) -> float:
    return self.active - self.embedding - self.unembedding


def param_counts(shape: Shape) -> ParamCounts:
  """Exact parameter counts of the model mixlaws builds for `shape` (no biases anywhere)."""
  d, n = shape.d_model, shape.n_layers
  embedding = shape.vocab_size * d + (shape.seq_len * d if shape.learned_positions else 0)
  unembedding = 0 if shape.tied_embeddings else shape.vocab_size * d
  attention = 4 * d * shape.attn_width * n
  dense_ffn = shape.ffn_matrices * d * shape.d_ff
  expert = shape.ffn_matrices * d * shape.d_ff / shape.granularity
  n_moe = shape.n_moe_layers
  moe_layer = (shape.n_experts + shape.n_shared_experts) * expert
  moe_layer_active = (shape.active_experts + shape.n_shared_experts) * expert
  n_norms = 2 * n + 1 + (n_moe if shape.moe_output_norm else 0)  # two per block, a final one
  return ParamCounts(
    embedding=embedding,
    unembedding=unembedding,
    attention=attention,
    ffn=(n - n_moe) * dense_ffn + n_moe * moe_layer,
    ffn_active=(n - n_moe) * dense_ffn + n_moe * moe_layer_active,
    router=n_moe * d * shape.n_experts,
    norms=shape.norm_width * d * n_norms,
  )


@dataclasses.dataclass(frozen=True)
class ConventionCount:
  """The N a paper's law uses, its active counterpart, and training FLOPs per token."""

  convention: str
  params: float
  active_params: float
  flops_per_token: float


def _krajewski2024(shape: Shape, p: ParamCounts) -> ConventionCount:
  # Krajewski et al. 2024 §5, §6.1 and Eq. 10: non-embedding, router excluded from N, charged in FLOPs.
  n = p.attention + p.ffn
  n_act = p.attention + p.ffn_active
  return ConventionCount("krajewski2024", n, n_act, C_F * n_act + C_R * p.router)


def _ludziejewski2025(shape: Shape, p: ParamCounts) -> ConventionCount:
  # Ludziejewski et al. 2025 Eq. 9/10: embeddings included; router and norms neglected; F = 6·N_act·D.
  emb = p.embedding + p.unembedding
  n_act = emb + p.attention + p.ffn_active
  return ConventionCount("ludziejewski2025", emb + p.attention + p.ffn, n_act, 6 * n_act)


def _chinchilla(shape: Shape, p: ParamCounts) -> ConventionCount:
  # Hoffmann et al. 2022, Appendix F, per token of a full-context forward pass; backward = 2x forward.
  d, ctx, a = shape.d_model, shape.seq_len, shape.attn_width
  attention = 2 * 3 * d * a + 2 * ctx * a + 3 * shape.n_heads * ctx + 2 * ctx * a + 2 * a * d
  ffn_active_per_layer = p.ffn_active / shape.n_layers if shape.n_layers else 0
  router_per_layer = p.router / shape.n_layers if shape.n_layers else 0
  block = attention + 2 * ffn_active_per_layer + 2 * router_per_layer
  forward = 2 * shape.vocab_size * d + shape.n_layers * block + 2 * d * shape.vocab_size
  return ConventionCount("chinchilla", p.total, p.active, 3 * forward)


def _kaplan(shape: Shape, p: ParamCounts) -> ConventionCount:
  # Kaplan et al. 2020, Table 1: C = 6N + 6·n_layer·n_ctx·d_attn per training token, N non-embedding.
  n_act = p.attention + p.ffn_active + p.router
  flops = 6 * n_act + 6 * shape.n_layers * shape.seq_len * shape.attn_width
  return ConventionCount("kaplan", p.attention + p.ffn + p.router, n_act, flops)


CONVENTIONS = {
  "krajewski2024": _krajewski2024,
  "ludziejewski2025": _ludziejewski2025,
  "chinchilla": _chinchilla,
  "kaplan": _kaplan,
}


def convention_count(shape: Shape, convention: str) -> ConventionCount:
  if convention not in CONVENTIONS:
    raise ValueError(f"convention: unknown {convention!r}; expected one of {', '.join(CONVENTIONS)}")
  return CONVENTIONS[convention](shape, param_counts(shape))


def training_flops(shape: Shape, tokens: float, convention: str) -> float:
  return convention_count(shape, convention).flops_per_token * tokens


@dataclasses.dataclass(frozen=True)
class RunCounts:
  """Every count of one run: components, totals, tokens, steps and FLOPs under every convention."""

  params: ParamCounts
  tokens: int
  steps: int
  conventions: dict[str, ConventionCount]

  def flops(self, convention: str) -> float:
    return self.conventions[convention].flops_per_token * self.tokens

  def to_dict(self) -> dict:
    """Flat, JSON-ready: the counting columns of config.json and the results store."""
    p = self.params
    out = {
      "params_embedding": int(p.embedding),
      "params_unembedding": int(p.unembedding),
      "params_attention": int(p.attention),
      "params_ffn": int(p.ffn),
      "params_router": int(p.router),
      "params_norms": int(p.norms),
      "params_total": int(p.total),
      "params_active": round(p.active),
      "params_non_embedding": int(p.non_embedding),
      "params_active_non_embedding": round(p.active_non_embedding),
      "tokens": self.tokens,
      "steps": self.steps,
    }
    for name, c in self.conventions.items():
      out[f"params_{name}"] = round(c.params)
      out[f"active_params_{name}"] = round(c.active_params)
      out[f"flops_{name}"] = c.flops_per_token * self.tokens
    return out


def run_counts(cfg: Config) -> RunCounts:
  shape = Shape.from_config(cfg)
  return RunCounts(
    params=param_counts(shape),
    tokens=budget.total_tokens(cfg),
    steps=budget.total_steps(cfg),
    conventions={name: convention_count(shape, name) for name in CONVENTIONS},
  )


def shape_from_blocks(n_blocks: int, width_per_block: int = 64) -> tuple[int, int]:
  """(d_model, n_heads) from the papers' shape rule d_model = 64·n_blocks, n_heads = d_model/64."""
  d_model = width_per_block * n_blocks
  return d_model, d_model // 64


def blocks_for_active_params(active_params: float, per_block: float = 12, width_per_block: float = 64) -> float:
  """Real n_blocks with N_act = per_block·d²·n and d = width_per_block·n (Krajewski et al. 2024 §1.5)."""
  return (active_params / (per_block * width_per_block**2)) ** (1 / 3)
