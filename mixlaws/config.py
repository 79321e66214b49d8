"""The run config: one declared schema, the ml_collections base config, validation, overrides.

The schema is declared once, as the frozen dataclasses below (every field typed, defaulted and
commented). `base_config()` turns them into a locked `ml_collections.ConfigDict`, which is what
study files and the command line edit; `resolve()` turns an edited ConfigDict back into the
frozen dataclasses that the inner code receives, filling derived fields and validating every
value. Declaring the fields once keeps the ConfigDict and the dataclasses from drifting apart.

The defaults reproduce the Joint MoE recipe (Ludziejewski et al. 2025, PAPERS.md §2.6):
SwiGLU FFN of width 3·d_model, RoPE, GPT-2 vocabulary, top-1 switch routing, WSD-ready AdamW.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import hashlib
import json
import typing
from typing import Any

import ml_collections

# Enumerated values, checked by `validate`.
ACTIVATIONS = ("gelu", "relu", "swiglu")
NORMS = ("rmsnorm", "layernorm")
POSITIONALS = ("rope", "learned")
DTYPES = ("float32", "bfloat16")
REMATS = ("none", "block")
ROUTERS = ("token_choice", "switch", "expert_choice", "mixture_of_tokens")
SOFTMAX_ORDERS = ("before_topk", "after_topk")
OUTPUT_SCALES = ("probability", "unit_mean")
EXPERT_FAN_INS = ("expert", "all_experts")
MOE_LAYER_PATTERNS = ("all", "second_half", "alternate")
DISPATCHES = ("einsum", "gather", "ragged")
SCHEDULES = ("cosine", "wsd", "constant")
DATA_SOURCES = ("stdlib", "files", "tfds")
TOKENIZERS = ("byte", "sentencepiece")
FLOPS_CONVENTIONS = ("krajewski2024", "ludziejewski2025", "chinchilla", "kaplan")
MESH_AXES = ("data", "fsdp", "tensor", "expert")
HEAD_WIDTH = 64  # n_heads = d_model / 64 (Krajewski et al. 2024; Ludziejewski et al. 2025)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Decoder-only transformer shape and numerics."""

  d_model: int = 512  # residual stream width
  n_layers: int = 8  # transformer blocks
  n_heads: int = 0  # attention heads of width d_model / n_heads; 0 → d_model // 64 (the papers' shape rule)
  d_ff: int = 0  # dense FFN hidden width; 0 → round(ffn_multiplier · d_model)
  ffn_multiplier: float = 3.0  # 3 for SwiGLU (Ludziejewski et al. 2025), 4 for GELU/ReLU
  activation: str = "swiglu"  # FFN nonlinearity: gelu | relu | swiglu (gated, 3 matrices)
  norm: str = "rmsnorm"  # pre-norm type: rmsnorm (scale only) | layernorm (scale and bias)
  norm_eps: float = 1e-6  # epsilon inside every norm
  positional: str = "rope"  # rope | learned (absolute, seq_len x d_model table)
  rope_theta: float = 10000.0  # RoPE base frequency
  tied_embeddings: bool = False  # share the input embedding with the output projection
  vocab_size: int = 50257  # GPT-2 vocabulary as in the papers; set 259 for the byte tokenizer
  seq_len: int = 512  # training context length in tokens
  param_dtype: str = "float32"  # dtype parameters are stored in: float32 | bfloat16
  compute_dtype: str = "float32"  # dtype of matmuls: float32 | bfloat16 (softmax and router stay float32)
  # Truncated-normal std = init_scale / sqrt(fan_in). NOT llm-random's rule: its init_truncated_normal
  # (lizrd/core/initialization.py L39-40) gives std = sqrt(scale / fan_in), so its scale 0.1 is init_scale
  # sqrt(0.1) ≈ 0.316 here (as is Fedus et al. 2022's "s = 0.1" as std sqrt(s / fan_in)).
  init_scale: float = 0.1
  remat: str = "none"  # rematerialisation: none | block (recompute each block in the backward pass)

  @property
  def head_dim(self) -> int:
    return self.d_model // self.n_heads


@dataclasses.dataclass(frozen=True)
class MoEConfig:
  """Mixture-of-Experts FFN; the model is dense when expansion_rate · granularity == 1."""

  expansion_rate: int = 1  # E: MoE-layer params / dense-FFN params (Krajewski et al. 2024 §1.1)
  granularity: int = 1  # G = d_ff / d_expert; n_experts = E·G, expert width = d_ff / G
  top_k: int = 0  # experts per token (token_choice); 0 → G, so active params do not change with G
  router: str = "switch"  # token_choice | switch (top-1) | expert_choice | mixture_of_tokens
  softmax_order: str = "before_topk"  # token choice: before_topk | after_topk (50B-scale recipe)
  renormalize: bool = False  # token choice: rescale the kept top-k weights to sum to one
  # Scale of the routed experts' combined output (`routers.output_scale`):
  # - probability: each pick weighted by its router probability, as the papers' reference code does
  #   (llm-random moe_layers/token_choice.py L85 `experts_output *= token_expert_values`). Near a
  #   uniform router the weights of a token's top-k picks sum to about top_k/(E·G), so the MoE branch
  #   starts about E× smaller than a dense FFN; with AdamW that acts like an lr cut by ~E on the experts.
  # - unit_mean: the same weights × E·G/top_k for token choice and switch, × E for expert choice, so they
  #   sum to 1 on average (mixture of tokens is unscaled: its merge weights are already convex).
  #   Measured on CPU (issue 18; d48, 2 layers, 2.1M byte tokens, lr 1e-3, seeds 0/1): token choice E=8
  #   2.286/2.262 with probability vs 2.187/2.182 with unit_mean, dense 2.267/2.314. The smoke
  #   study uses unit_mean. Caution: at half that budget (1M tokens, lr 2e-3, capacity 2) unit_mean E=8
  #   still lost to dense by +0.116 nats, 95% [+0.036, +0.195] over 3 seeds (docs/bench/science.md, F1).
  output_scale: str = "probability"
  # Fan-in of the experts' down projection at init: expert (its width d_ff/G) | all_experts (E·G × width,
  # llm-random's ExpertFF, moe_layers/expert_types.py L33-40: fan_in = n_experts · expert_size, which
  # starts each expert √(E·G)× smaller). The default keeps the per-expert fan-in.
  expert_fan_in: str = "expert"
  capacity_factor: float = 1.0  # training capacity per expert = cf · tokens · top_k / n_experts; 0 → dropless
  eval_capacity_factor: float = 0.0  # capacity factor at evaluation; 0 → dropless
  group_size: int = 256  # expert choice / MoT: tokens at one position grouped across sequences
  temperature: float = 1.0  # MoT: temperature of the per-expert softmax over the group
  discrete_routing: bool = False  # MoT transition tuning: one-hot (argmax) mixing, i.e. expert choice
  output_norm: bool = True  # expert choice: extra norm before the MoE output (Krajewski et al. 2024)
  n_shared_experts: int = 0  # always-active experts of width d_ff / G beside the routed ones
  layers: str = "all"  # blocks with an MoE FFN: all | second_half | alternate (odd blocks)
  load_balance_weight: float = 0.01  # Switch load-balancing loss weight (Ludziejewski et al. 2025)
  z_loss_weight: float = 0.001  # router z-loss weight (Ludziejewski et al. 2025)
  dispatch: str = "gather"  # einsum (one-hot) | gather (sorted capacity buffers) | ragged (dropless ragged_dot)

  @property
  def n_experts(self) -> int:
    return self.expansion_rate * self.granularity

  @property
  def is_moe(self) -> bool:
    return self.n_experts > 1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimiser, schedule and budget of one run."""

  batch_size: int = 256  # global batch in sequences (after any ramp-up)
  tokens: int = 2_000_000_000  # training tokens; exactly one of tokens and steps is > 0
  steps: int = 0  # training steps; exactly one of tokens and steps is > 0
  lr: float = 3e-4  # peak learning rate
  schedule: str = "cosine"  # cosine | wsd (warmup, constant, linear decay to 0) | constant
  warmup_steps: int = 0  # linear warmup length in steps (at most one warmup_* field is non-zero)
  warmup_tokens: int = 0  # linear warmup length in tokens (Ludziejewski et al. 2025: 130M)
  warmup_fraction: float = 0.01  # linear warmup as a fraction of training steps (Krajewski et al.: 1%)
  final_lr_fraction: float = 0.1  # cosine: final lr / peak lr (Krajewski et al. 2024: 2e-5 / 2e-4)
  decay_fraction: float = 0.2  # wsd: linear decay to 0 over this final fraction of tokens
  weight_decay: float = 0.1  # AdamW decoupled weight decay
  beta1: float = 0.9  # AdamW first-moment decay
  beta2: float = 0.95  # AdamW second-moment decay
  eps: float = 1e-8  # AdamW epsilon
  grad_clip: float = 1.0  # global gradient-norm clip; 0 → off
  seed: int = 0  # seeds parameter init and the data order
  batch_rampup: str = ""  # "SEQS:TOKENS,…": SEQS per batch until TOKENS seen, then the next; then batch_size
  eval_every: int = 0  # steps between evaluations on the held-out split; 0 → only at the end
  eval_tokens: int = 1_048_576  # held-out tokens per evaluation (a fixed budget)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where tokens come from and how text becomes tokens."""

  source: str = "stdlib"  # stdlib (this Python's standard-library .py files) | files | tfds
  paths: str = ""  # source=files: comma-separated globs of .txt, .jsonl or source files
  text_field: str = "text"  # source=files: the text field of .jsonl records
  dataset: str = ""  # source=tfds: TFDS name, e.g. "c4/en:3.1.0"
  data_dir: str = ""  # prepared datasets (local or gs://); "" → ~/.cache/mixlaws/tfds
  validation_fraction: float = 0.05  # documents held out by a hash of their path (local text sources)
  max_documents: int = 0  # read at most this many documents per split; 0 → all
  tokenizer: str = "byte"  # byte (256 bytes + specials) | sentencepiece
  tokenizer_path: str = ""  # sentencepiece: path of the .model file


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Device mesh and the logical→mesh axis rules (one rule per logical name)."""

  data: int = -1  # data-parallel axis size; exactly one axis may be -1 (all remaining devices)
  fsdp: int = 1  # fully-sharded data-parallel axis size (parameters sharded over it)
  tensor: int = 1  # tensor-parallel axis size
  expert: int = 1  # expert-parallel axis size; > 1: MoE layers route per device and all-to-all (expert_parallel.py)
  # Parameter view: logical axis → mesh axis (or None). Dense weights over fsdp, experts over expert.
  param_rules: tuple = (
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("head_dim", None),
    ("vocab", "tensor"),
    ("expert", "expert"),
    ("layers", None),
  )
  # Activation view: logical axis → mesh axis, tuple of mesh axes, or None.
  activation_rules: tuple = (
    ("batch", ("data", "fsdp", "expert")),
    ("seq", None),
    ("embed", None),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("head_dim", None),
    ("vocab", "tensor"),
    ("expert", "expert"),
  )


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
  """Multi-process runs through jax.distributed (automatic on TPU pods)."""

  coordinator_address: str = ""  # "host:port" of process 0; "" → single process (or TPU auto-detect)
  num_processes: int = 1  # processes taking part in the run
  process_id: int = 0  # this process's index, 0 … num_processes-1
  cpu_collectives: str = "gloo"  # CPU collectives implementation for multi-process CPU runs


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """Orbax checkpoints of train state and data-iterator state."""

  every_steps: int = 500  # save every this many steps (and at the end, and on SIGTERM); 0 → end only
  keep: int = 2  # newest checkpoints kept


@dataclasses.dataclass(frozen=True)
class OutputConfig:
  """What a run writes besides checkpoints."""

  log_every: int = 1  # steps between metric records
  flops_convention: str = "chinchilla"  # convention of the `flops` column of metric records
  tensorboard: bool = False  # also write TensorBoard events under run_dir/events (the tensorboard extra)
  wandb: bool = False  # also log to Weights & Biases under run_dir/wandb, offline unless WANDB_MODE says (wandb extra)


@dataclasses.dataclass(frozen=True)
class Config:
  """A whole run."""

  model: ModelConfig = ModelConfig()
  moe: MoEConfig = MoEConfig()
  train: TrainConfig = TrainConfig()
  data: DataConfig = DataConfig()
  mesh: MeshConfig = MeshConfig()
  distributed: DistributedConfig = DistributedConfig()
  checkpoint: CheckpointConfig = CheckpointConfig()
  output: OutputConfig = OutputConfig()

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


_SECTIONS: dict[str, type] = typing.get_type_hints(Config)  # section name → its dataclass


@functools.cache  # get_type_hints is slow and a study resolves thousands of configs
def _field_types(section_cls: type) -> dict[str, type]:
  return typing.get_type_hints(section_cls)


def base_config() -> ml_collections.ConfigDict:
  """The base config as a locked ConfigDict: every field declared, types enforced."""
  cd = ml_collections.ConfigDict(Config().to_dict())
  cd.lock()
  return cd


# --------------------------------------------------------------------------------------------
# Dotted overrides


def _known_fields() -> list[str]:
  return [f"{s}.{f}" for s, cls in _SECTIONS.items() for f in _field_types(cls)]


def _lookup(dotted: str) -> tuple[str, str, type]:
  parts = dotted.split(".")
  if len(parts) != 2 or parts[0] not in _SECTIONS or parts[1] not in _field_types(_SECTIONS[parts[0]]):
    close = difflib.get_close_matches(dotted, _known_fields(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"{dotted}: unknown config field{hint}")
  return parts[0], parts[1], _field_types(_SECTIONS[parts[0]])[parts[1]]


def parse_value(dotted: str, text: str) -> Any:
  """Parses `text` as a value of the declared type of the field `dotted`."""
  _, _, kind = _lookup(dotted)
  if kind is str:
    return text
  if kind is bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
      return True
    if lowered in ("false", "0", "no"):
      return False
    raise ValueError(f"{dotted}: expected true or false, got {text!r}")
  try:
    value = ast.literal_eval(text.strip())
  except (ValueError, SyntaxError):
    raise ValueError(f"{dotted}: expected {kind.__name__}, got {text!r}") from None
  if kind is int and isinstance(value, float) and value.is_integer():
    value = int(value)  # "1e9" for a token count
  if kind is float and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
    raise ValueError(f"{dotted}: expected {kind.__name__}, got {text!r}")
  return value


def apply_overrides(cd: ml_collections.ConfigDict, overrides: list[str] | tuple[str, ...]) -> ml_collections.ConfigDict:
  """Applies `section.field=value` overrides, each type-checked against the declared field."""
  cd = ml_collections.ConfigDict(cd.to_dict())  # work on a copy; the caller's dict stays as is
  cd.lock()
  for item in overrides:
    if "=" not in item:
      raise ValueError(f"override {item!r}: expected section.field=value")
    dotted, text = item.split("=", 1)
    dotted = dotted.strip()
    section, name, _ = _lookup(dotted)
    cd[section][name] = parse_value(dotted, text)
  return cd


# --------------------------------------------------------------------------------------------
# ConfigDict / dict → frozen dataclasses


def _build(section: str, values: Any) -> Any:
  cls = _SECTIONS[section]
  types = _field_types(cls)
  if not isinstance(values, dict):
    raise ValueError(f"{section}: expected a mapping of fields, got {type(values).__name__}")
  unknown = sorted(set(values) - set(types))
  if unknown:
    _lookup(f"{section}.{unknown[0]}")  # raises with a did-you-mean hint
  kwargs = {}
  for name, kind in types.items():
    if name not in values:
      continue
    value = values[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)
    if kind is tuple and isinstance(value, list):
      value = _to_tuple(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
      raise ValueError(f"{section}.{name}: expected {kind.__name__}, got {value!r}")
    kwargs[name] = value
  return cls(**kwargs)


def _to_tuple(value: Any) -> Any:
  return tuple(_to_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def from_dict(values: dict[str, Any] | ml_collections.ConfigDict) -> Config:
  """Builds a Config from a (possibly partial) nested dict; unknown fields are errors."""
  if isinstance(values, ml_collections.ConfigDict):
    values = values.to_dict()
  unknown = sorted(set(values) - set(_SECTIONS))
  if unknown:
    close = difflib.get_close_matches(unknown[0], list(_SECTIONS), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"{unknown[0]}: unknown config section{hint}")
  return Config(**{s: _build(s, values[s]) for s in _SECTIONS if s in values})


def resolve(values: dict[str, Any] | ml_collections.ConfigDict, n_devices: int | None = None) -> Config:
  """Builds, fills derived fields (n_heads, d_ff, top_k) and validates a config."""
  cfg = from_dict(values)
  model, moe = cfg.model, cfg.moe
  if model.n_heads == 0:
    model = dataclasses.replace(model, n_heads=max(model.d_model // HEAD_WIDTH, 1))
  if model.d_ff == 0:
    model = dataclasses.replace(model, d_ff=round(model.ffn_multiplier * model.d_model))
  if moe.top_k == 0:
    moe = dataclasses.replace(moe, top_k=1 if moe.router == "switch" else moe.granularity)
  cfg = dataclasses.replace(cfg, model=model, moe=moe)
  validate(cfg, n_devices=n_devices)
  return cfg


def load_json(text: str) -> Config:
  """A Config from the JSON of `to_dict()` (config.json of a run dir)."""
  return resolve(json.loads(text))


def config_hash(cfg: Config) -> str:
  """sha256 of the fully resolved config with sorted keys (DESIGN.md run-id contract)."""
  blob = json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Validation: every rule raises a one-line ValueError naming the dotted field and why.


def moe_layer_mask(n_layers: int, pattern: str) -> tuple[bool, ...]:
  """Which of the n_layers blocks hold an MoE FFN under `moe.layers`."""
  if pattern == "all":
    return (True,) * n_layers
  if pattern == "second_half":
    return tuple(i >= n_layers // 2 for i in range(n_layers))
  if pattern == "alternate":
    return tuple(i % 2 == 1 for i in range(n_layers))
  raise ValueError(f"moe.layers: unknown pattern {pattern!r}; expected one of {', '.join(MOE_LAYER_PATTERNS)}")


def parse_rampup(text: str) -> tuple[tuple[int, int], ...]:
  """Parses train.batch_rampup "SEQS:TOKENS,…" into ((seqs, token_threshold), …)."""
  if not text.strip():
    return ()
  stages = []
  for item in text.split(","):
    try:
      seqs, tokens = item.split(":")
      stage = (int(seqs), int(float(tokens)))
    except ValueError:
      raise ValueError(f"train.batch_rampup: cannot parse {item.strip()!r}; expected SEQS:TOKENS") from None
    stages.append(stage)
  return tuple(stages)


def _one_of(dotted: str, value: str, allowed: tuple[str, ...]) -> None:
  if value not in allowed:
    raise ValueError(f"{dotted}: unknown value {value!r}; expected one of {', '.join(allowed)}")


def _positive(dotted: str, value: float) -> None:
  if not value > 0:
    raise ValueError(f"{dotted}: must be positive, got {value}")


def _non_negative(dotted: str, value: float) -> None:
  if value < 0:
    raise ValueError(f"{dotted}: must be non-negative, got {value}")


def _fraction(dotted: str, value: float) -> None:
  if not 0 <= value <= 1:
    raise ValueError(f"{dotted}: must lie in [0, 1], got {value}")


def _validate_model(m: ModelConfig) -> None:
  _positive("model.ffn_multiplier", m.ffn_multiplier)  # first: d_ff derives from it
  for name in ("d_model", "n_layers", "n_heads", "d_ff", "vocab_size", "seq_len"):
    _positive(f"model.{name}", getattr(m, name))
  _positive("model.norm_eps", m.norm_eps)
  _positive("model.init_scale", m.init_scale)
  _positive("model.rope_theta", m.rope_theta)
  _one_of("model.activation", m.activation, ACTIVATIONS)
  _one_of("model.norm", m.norm, NORMS)
  _one_of("model.positional", m.positional, POSITIONALS)
  _one_of("model.param_dtype", m.param_dtype, DTYPES)
  _one_of("model.compute_dtype", m.compute_dtype, DTYPES)
  _one_of("model.remat", m.remat, REMATS)
  if m.d_model % m.n_heads:
    raise ValueError(f"model.d_model: {m.d_model} is not divisible by model.n_heads = {m.n_heads}")
  if m.positional == "rope" and m.head_dim % 2:
    raise ValueError(f"model.n_heads: RoPE needs an even head width, got d_model / n_heads = {m.head_dim}")


def _validate_moe(moe: MoEConfig, m: ModelConfig, t: TrainConfig) -> None:
  _positive("moe.expansion_rate", moe.expansion_rate)
  _positive("moe.granularity", moe.granularity)
  _one_of("moe.router", moe.router, ROUTERS)
  _one_of("moe.softmax_order", moe.softmax_order, SOFTMAX_ORDERS)
  _one_of("moe.output_scale", moe.output_scale, OUTPUT_SCALES)
  _one_of("moe.expert_fan_in", moe.expert_fan_in, EXPERT_FAN_INS)
  _one_of("moe.layers", moe.layers, MOE_LAYER_PATTERNS)
  _one_of("moe.dispatch", moe.dispatch, DISPATCHES)
  _non_negative("moe.capacity_factor", moe.capacity_factor)
  _non_negative("moe.eval_capacity_factor", moe.eval_capacity_factor)
  _non_negative("moe.n_shared_experts", moe.n_shared_experts)
  _non_negative("moe.load_balance_weight", moe.load_balance_weight)
  _non_negative("moe.z_loss_weight", moe.z_loss_weight)
  _positive("moe.temperature", moe.temperature)
  _positive("moe.group_size", moe.group_size)
  _positive("moe.top_k", moe.top_k)
  if m.d_ff % moe.granularity:
    raise ValueError(f"moe.granularity: model.d_ff = {m.d_ff} is not divisible by granularity {moe.granularity}")
  if not moe.is_moe:
    return
  if moe.top_k > moe.n_experts:
    raise ValueError(f"moe.top_k: {moe.top_k} exceeds the number of experts E·G = {moe.n_experts}")
  if moe.router == "switch" and moe.top_k != 1:
    raise ValueError(f"moe.top_k: the switch router routes each token to 1 expert, got {moe.top_k}")
  if moe.router in ("expert_choice", "mixture_of_tokens"):
    batches = [t.batch_size] + [seqs for seqs, _ in parse_rampup(t.batch_rampup)]
    for seqs in batches:
      if seqs % moe.group_size:
        raise ValueError(
          f"moe.group_size: {moe.router} groups {moe.group_size} sequences, which does not divide a batch of {seqs}"
        )
  if moe.router == "expert_choice" and moe.granularity > moe.n_experts:
    raise ValueError(f"moe.granularity: expert choice needs G <= E·G, got G = {moe.granularity}")


def _validate_train(t: TrainConfig) -> None:
  _positive("train.batch_size", t.batch_size)
  _positive("train.lr", t.lr)
  _non_negative("train.tokens", t.tokens)
  _non_negative("train.steps", t.steps)
  if (t.tokens > 0) == (t.steps > 0):
    raise ValueError(
      f"train.tokens: exactly one of train.tokens and train.steps must be positive, got tokens={t.tokens}, steps={t.steps}"
    )
  _one_of("train.schedule", t.schedule, SCHEDULES)
  _non_negative("train.warmup_steps", t.warmup_steps)
  _non_negative("train.warmup_tokens", t.warmup_tokens)
  _fraction("train.warmup_fraction", t.warmup_fraction)
  set_warmups = [n for n in ("warmup_steps", "warmup_tokens", "warmup_fraction") if getattr(t, n) > 0]
  if len(set_warmups) > 1:
    raise ValueError(f"train.{set_warmups[1]}: only one of {', '.join('train.' + n for n in set_warmups)} may be set")
  _fraction("train.final_lr_fraction", t.final_lr_fraction)
  _fraction("train.decay_fraction", t.decay_fraction)
  _non_negative("train.weight_decay", t.weight_decay)
  for name in ("beta1", "beta2"):
    if not 0 <= getattr(t, name) < 1:
      raise ValueError(f"train.{name}: must lie in [0, 1), got {getattr(t, name)}")
  _positive("train.eps", t.eps)
  _non_negative("train.grad_clip", t.grad_clip)
  _non_negative("train.eval_every", t.eval_every)
  _positive("train.eval_tokens", t.eval_tokens)
  previous = 0
  for seqs, tokens in parse_rampup(t.batch_rampup):
    if seqs <= 0 or tokens <= previous:
      raise ValueError(
        f"train.batch_rampup: stages need positive batch sizes and increasing token thresholds, got {seqs}:{tokens}"
      )
    previous = tokens


def _validate_data(d: DataConfig) -> None:
  _one_of("data.source", d.source, DATA_SOURCES)
  _one_of("data.tokenizer", d.tokenizer, TOKENIZERS)
  if d.source == "files" and not d.paths.strip():
    raise ValueError("data.paths: source=files needs at least one glob")
  if d.source == "tfds" and not d.dataset.strip():
    raise ValueError("data.dataset: source=tfds needs a TFDS dataset name, e.g. c4/en:3.1.0")
  if d.tokenizer == "sentencepiece" and not d.tokenizer_path:
    raise ValueError("data.tokenizer_path: the sentencepiece tokenizer needs a .model file")
  if not 0 < d.validation_fraction < 1:
    raise ValueError(f"data.validation_fraction: must lie in (0, 1), got {d.validation_fraction}")
  _non_negative("data.max_documents", d.max_documents)


def _check_axis_sizes(mesh: MeshConfig) -> list[str]:
  """Checks each axis size; returns the axes set to -1 (at most one)."""
  sizes = [getattr(mesh, a) for a in MESH_AXES]
  wild = [a for a, s in zip(MESH_AXES, sizes) if s == -1]
  bad = [a for a, s in zip(MESH_AXES, sizes) if s == 0 or s < -1]
  if bad:
    raise ValueError(f"mesh.{bad[0]}: axis sizes must be positive or -1, got {getattr(mesh, bad[0])}")
  if len(wild) > 1:
    raise ValueError(f"mesh.{wild[1]}: only one mesh axis may be -1 (already mesh.{wild[0]})")
  return wild


def mesh_shape(mesh: MeshConfig, n_devices: int) -> tuple[int, ...]:
  """Sizes of (data, fsdp, tensor, expert) with the one -1 filled from n_devices."""
  wild = _check_axis_sizes(mesh)
  sizes = [getattr(mesh, a) for a in MESH_AXES]
  known = 1
  for s in sizes:
    known *= s if s > 0 else 1
  if (n_devices % known) if wild else (known != n_devices):
    # Blame an axis the user set: the first that alone does not divide the devices, else the last set above 1.
    set_axes = [a for a, s in zip(MESH_AXES, sizes) if s > 1]
    blamed = next((a for a in set_axes if n_devices % getattr(mesh, a)), set_axes[-1] if set_axes else MESH_AXES[0])
    product = " × ".join(f"mesh.{a}={getattr(mesh, a)}" for a in set_axes) or "every axis 1"
    if wild:
      raise ValueError(f"mesh.{blamed}: {product} does not divide the {n_devices} devices "
                       f"(mesh.{wild[0]}=-1 takes the rest)")  # fmt: skip
    raise ValueError(f"mesh.{blamed}: the mesh axes multiply to {known} ({product}), but there are {n_devices} devices")
  return tuple(n_devices // known if s == -1 else s for s in sizes)


def _validate_mesh(mesh: MeshConfig, n_devices: int | None) -> None:
  for view in ("param_rules", "activation_rules"):
    names = [rule[0] for rule in getattr(mesh, view)]
    for rule in getattr(mesh, view):
      targets = rule[1] if isinstance(rule[1], tuple) else (rule[1],)
      for target in targets:
        if target is not None and target not in MESH_AXES:
          raise ValueError(f"mesh.{view}: {rule[0]!r} maps to unknown mesh axis {target!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
      raise ValueError(f"mesh.{view}: logical axis {repeated[0]!r} has more than one rule")
  if n_devices is None:
    _check_axis_sizes(mesh)
  else:
    mesh_shape(mesh, n_devices)


def _validate_distributed(d: DistributedConfig) -> None:
  _positive("distributed.num_processes", d.num_processes)
  if not 0 <= d.process_id < d.num_processes:
    raise ValueError(f"distributed.process_id: must lie in [0, {d.num_processes}), got {d.process_id}")
  if d.num_processes > 1 and not d.coordinator_address:
    raise ValueError("distributed.coordinator_address: a multi-process run needs the host:port of process 0")


def validate(cfg: Config, n_devices: int | None = None) -> None:
  """Raises a one-line ValueError naming the first bad field; checks the mesh against n_devices."""
  _validate_model(cfg.model)
  _validate_moe(cfg.moe, cfg.model, cfg.train)
  _validate_train(cfg.train)
  _validate_data(cfg.data)
  _validate_mesh(cfg.mesh, n_devices)
  _validate_distributed(cfg.distributed)
  _non_negative("checkpoint.every_steps", cfg.checkpoint.every_steps)
  _positive("checkpoint.keep", cfg.checkpoint.keep)
  _positive("output.log_every", cfg.output.log_every)
  _one_of("output.flops_convention", cfg.output.flops_convention, FLOPS_CONVENTIONS)
  if cfg.data.tokenizer == "byte" and cfg.model.vocab_size < BYTE_VOCAB_SIZE:
    raise ValueError(
      f"model.vocab_size: the byte tokenizer needs at least {BYTE_VOCAB_SIZE} entries, got {cfg.model.vocab_size}"
    )


# The byte tokenizer's vocabulary: 256 bytes plus PAD, BOS and EOS.
BYTE_VOCAB_SIZE = 259


def load_file(path: str) -> ml_collections.ConfigDict:
  """A ConfigDict from a config file: a Python file defining get_config(), a JSON config, or a run dir.

  A run dir's config.json holds {"config": …, "counts": …}; a bare JSON holds the config itself.
  Fields left out keep their base-config defaults.
  """
  import importlib.util
  import pathlib

  p = pathlib.Path(path)
  if p.is_dir():
    p = p / "config.json"
  if not p.exists():
    raise ValueError(f"{path}: no such config file")
  if p.suffix == ".py":
    spec = importlib.util.spec_from_file_location(f"_mixlaws_config_{p.stem}", p)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
      raise ValueError(f"{path}: a Python config file must define get_config()")
    values = module.get_config()
    values = values.to_dict() if isinstance(values, ml_collections.ConfigDict) else values
  else:
    try:
      values = json.loads(p.read_text())
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    values = values.get("config", values)
  return merged(values)


def merged(values: dict[str, Any]) -> ml_collections.ConfigDict:
  """The base config with the (partial) nested dict `values` laid over it, type-checked."""
  defaults = Config().to_dict()
  built = from_dict(values).to_dict()  # raises on unknown fields and wrong types
  for section, fields in values.items():
    for name in fields:
      defaults[section][name] = built[section][name]
  cd = ml_collections.ConfigDict(defaults)
  cd.lock()
  return cd
