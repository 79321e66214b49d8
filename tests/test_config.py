"""Config schema: resolution, overrides, round trips and every validation rule's message."""

import json

import ml_collections
import pytest

from mixlaws import config


def _resolve(*overrides, n_devices=None):
  return config.resolve(config.apply_overrides(config.base_config(), list(overrides)), n_devices=n_devices)


def test_base_config_declares_every_field_and_resolves():
  cd = config.base_config()
  assert isinstance(cd, ml_collections.ConfigDict)
  cfg = config.resolve(cd)
  assert cfg.model.n_heads == 8 and cfg.model.d_ff == 1536 and cfg.moe.top_k == 1
  with pytest.raises(AttributeError):
    cd.model.undeclared = 1  # locked: nothing undeclared can be added


def test_derived_fields():
  cfg = _resolve("model.d_model=1024", "moe.router=token_choice", "moe.granularity=4", "moe.expansion_rate=8")
  assert cfg.model.n_heads == 16 and cfg.model.head_dim == 64 and cfg.model.d_ff == 3072
  assert cfg.moe.top_k == 4 and cfg.moe.n_experts == 32


def test_overrides_are_type_checked():
  cfg = _resolve("train.lr=1e-3", "train.tokens=1e9", "model.tied_embeddings=true", "mesh.data=2", n_devices=2)
  assert cfg.train.lr == 1e-3 and cfg.train.tokens == 10**9 and cfg.model.tied_embeddings
  assert isinstance(cfg.train.lr, float) and isinstance(cfg.train.tokens, int)
  assert _resolve("train.lr=1").train.lr == 1.0  # an int for a float field is fine


@pytest.mark.parametrize(
  "override, message",
  [
    ("train.lr=abc", "train.lr: expected float, got 'abc'"),
    ("model.d_model=12.5", "model.d_model: expected int, got '12.5'"),
    ("model.tied_embeddings=maybe", "model.tied_embeddings: expected true or false"),
    ("model.d_modl=3", "model.d_modl: unknown config field (did you mean model.d_model?)"),
    ("nosection.x=1", "nosection.x: unknown config field"),
    ("train.lr", "override 'train.lr': expected section.field=value"),
  ],
)
def test_override_errors(override, message):
  with pytest.raises(ValueError) as e:
    config.apply_overrides(config.base_config(), [override])
  assert str(e.value).startswith(message)


RULES = [
  # (overrides, message start): one per validation rule.
  (["model.d_model=500", "model.n_heads=8"], "model.d_model: 500 is not divisible by model.n_heads = 8"),
  (["model.d_model=0"], "model.d_model: must be positive"),
  (["model.n_layers=-1"], "model.n_layers: must be positive"),
  (["model.vocab_size=0"], "model.vocab_size: must be positive"),
  (["model.seq_len=0"], "model.seq_len: must be positive"),
  (["model.d_ff=-3"], "model.d_ff: must be positive"),
  (["model.ffn_multiplier=0"], "model.ffn_multiplier: must be positive"),
  (["model.norm_eps=0"], "model.norm_eps: must be positive"),
  (["model.init_scale=0"], "model.init_scale: must be positive"),
  (["model.rope_theta=0"], "model.rope_theta: must be positive"),
  (["model.activation=tanh"], "model.activation: unknown value 'tanh'"),
  (["model.norm=batchnorm"], "model.norm: unknown value 'batchnorm'"),
  (["model.positional=alibi"], "model.positional: unknown value 'alibi'"),
  (["model.param_dtype=float16"], "model.param_dtype: unknown value 'float16'"),
  (["model.compute_dtype=int8"], "model.compute_dtype: unknown value 'int8'"),
  (["model.remat=full"], "model.remat: unknown value 'full'"),
  (["model.d_model=96", "model.n_heads=32"], "model.n_heads: RoPE needs an even head width"),
  (["model.vocab_size=100"], "model.vocab_size: the byte tokenizer needs at least 259 entries"),
  (["moe.router=hash"], "moe.router: unknown value 'hash'"),
  (
    ["moe.granularity=5", "moe.expansion_rate=2"],
    "moe.granularity: model.d_ff = 1536 is not divisible by granularity 5",
  ),
  (["moe.expansion_rate=0"], "moe.expansion_rate: must be positive"),
  (["moe.granularity=0"], "moe.granularity: must be positive"),
  (
    ["moe.router=token_choice", "moe.expansion_rate=2", "moe.top_k=3"],
    "moe.top_k: 3 exceeds the number of experts E·G = 2",
  ),
  (["moe.expansion_rate=4", "moe.top_k=2"], "moe.top_k: the switch router routes each token to 1 expert, got 2"),
  (
    ["moe.router=expert_choice", "moe.expansion_rate=4", "train.batch_size=100"],
    "moe.group_size: expert_choice groups 256 sequences",
  ),
  (
    ["moe.router=mixture_of_tokens", "moe.expansion_rate=4", "moe.group_size=32", "train.batch_rampup=48:1e6"],
    "moe.group_size: mixture_of_tokens groups 32 sequences, which does not divide a batch of 48",
  ),
  (["moe.softmax_order=never"], "moe.softmax_order: unknown value 'never'"),
  (["moe.layers=first"], "moe.layers: unknown value 'first'"),
  (["moe.dispatch=scatter"], "moe.dispatch: unknown value 'scatter'"),
  (["moe.capacity_factor=-1"], "moe.capacity_factor: must be non-negative"),
  (["moe.eval_capacity_factor=-1"], "moe.eval_capacity_factor: must be non-negative"),
  (["moe.n_shared_experts=-1"], "moe.n_shared_experts: must be non-negative"),
  (["moe.load_balance_weight=-1"], "moe.load_balance_weight: must be non-negative"),
  (["moe.z_loss_weight=-1"], "moe.z_loss_weight: must be non-negative"),
  (["moe.temperature=0"], "moe.temperature: must be positive"),
  (["moe.group_size=0"], "moe.group_size: must be positive"),
  (["moe.top_k=-1"], "moe.top_k: must be positive"),
  (["train.tokens=0"], "train.tokens: exactly one of train.tokens and train.steps must be positive"),
  (["train.tokens=-5"], "train.tokens: must be non-negative"),
  (["train.steps=10"], "train.tokens: exactly one of train.tokens and train.steps must be positive"),
  (["train.steps=-1"], "train.steps: must be non-negative"),
  (["train.batch_size=0"], "train.batch_size: must be positive"),
  (["train.lr=0"], "train.lr: must be positive"),
  (["train.schedule=linear"], "train.schedule: unknown value 'linear'"),
  (
    ["train.warmup_steps=10"],
    "train.warmup_fraction: only one of train.warmup_steps, train.warmup_fraction may be set",
  ),
  (["train.warmup_steps=-1"], "train.warmup_steps: must be non-negative"),
  (["train.warmup_tokens=-1"], "train.warmup_tokens: must be non-negative"),
  (["train.warmup_fraction=2"], "train.warmup_fraction: must lie in [0, 1]"),
  (["train.final_lr_fraction=1.5"], "train.final_lr_fraction: must lie in [0, 1]"),
  (["train.decay_fraction=-0.1"], "train.decay_fraction: must lie in [0, 1]"),
  (["train.weight_decay=-1"], "train.weight_decay: must be non-negative"),
  (["train.beta1=1"], "train.beta1: must lie in [0, 1)"),
  (["train.beta2=1.5"], "train.beta2: must lie in [0, 1)"),
  (["train.eps=0"], "train.eps: must be positive"),
  (["train.grad_clip=-1"], "train.grad_clip: must be non-negative"),
  (["train.eval_every=-1"], "train.eval_every: must be non-negative"),
  (["train.eval_tokens=0"], "train.eval_tokens: must be positive"),
  (["train.batch_rampup=128"], "train.batch_rampup: cannot parse '128'; expected SEQS:TOKENS"),
  (
    ["train.batch_rampup=128:1e9,256:5e8"],
    "train.batch_rampup: stages need positive batch sizes and increasing token thresholds",
  ),
  (["data.source=web"], "data.source: unknown value 'web'"),
  (["data.source=files"], "data.paths: source=files needs at least one glob"),
  (["data.source=tfds"], "data.dataset: source=tfds needs a TFDS dataset name"),
  (["data.tokenizer=bpe"], "data.tokenizer: unknown value 'bpe'"),
  (["data.tokenizer=sentencepiece"], "data.tokenizer_path: the sentencepiece tokenizer needs a .model file"),
  (["data.validation_fraction=0"], "data.validation_fraction: must lie in (0, 1)"),
  (["data.max_documents=-1"], "data.max_documents: must be non-negative"),
  (["mesh.fsdp=0"], "mesh.fsdp: axis sizes must be positive or -1"),
  (["mesh.fsdp=-1"], "mesh.fsdp: only one mesh axis may be -1 (already mesh.data)"),
  (
    ["mesh.param_rules=(('embed', 'fsdp'), ('embed', 'tensor'))"],
    "mesh.param_rules: logical axis 'embed' has more than one rule",
  ),
  (["mesh.activation_rules=(('batch', 'pod'),)"], "mesh.activation_rules: 'batch' maps to unknown mesh axis 'pod'"),
  (["distributed.num_processes=0"], "distributed.num_processes: must be positive"),
  (["distributed.process_id=3"], "distributed.process_id: must lie in [0, 1)"),
  (
    ["distributed.num_processes=2", "distributed.process_id=1"],
    "distributed.coordinator_address: a multi-process run needs",
  ),
  (["checkpoint.every_steps=-1"], "checkpoint.every_steps: must be non-negative"),
  (["checkpoint.keep=0"], "checkpoint.keep: must be positive"),
  (["output.log_every=0"], "output.log_every: must be positive"),
  (["output.flops_convention=palm"], "output.flops_convention: unknown value 'palm'"),
]


@pytest.mark.parametrize("overrides, message", RULES, ids=[" ".join(o) for o, _ in RULES])
def test_validation_rule_message(overrides, message):
  with pytest.raises(ValueError) as e:
    _resolve(*overrides)
  text = str(e.value)
  assert text.startswith(message), text
  assert "\n" not in text


@pytest.mark.parametrize(
  "overrides, n_devices, message",
  [
    (["mesh.data=2", "mesh.fsdp=2"], 8, "mesh.fsdp: the mesh axes multiply to 4"),
    (["mesh.fsdp=3"], 8, "mesh.fsdp: mesh.fsdp=3 does not divide the 8 devices"),
  ],
)
def test_mesh_must_match_devices(overrides, n_devices, message):
  with pytest.raises(ValueError, match="^" + message.replace(".", r"\.")):
    _resolve(*overrides, n_devices=n_devices)


def test_mesh_shape_fills_wildcard():
  cfg = _resolve("mesh.fsdp=2", "mesh.expert=2", n_devices=8)
  assert config.mesh_shape(cfg.mesh, 8) == (2, 2, 1, 2)


def test_round_trip_and_hash(tmp_path):
  cfg = _resolve("moe.expansion_rate=8", "train.lr=1e-3")
  again = config.load_json(json.dumps(cfg.to_dict()))
  assert again == cfg and config.config_hash(again) == config.config_hash(cfg)
  assert config.config_hash(_resolve("moe.expansion_rate=8", "train.lr=2e-3")) != config.config_hash(cfg)
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  (run_dir / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "counts": {}}))
  assert config.resolve(config.load_file(str(run_dir))) == cfg


def test_load_python_config_file(tmp_path):
  path = tmp_path / "my_run.py"
  path.write_text(
    "from mixlaws import config\ndef get_config():\n  c = config.base_config()\n  c.model.d_model = 256\n  return c\n"
  )
  assert config.resolve(config.load_file(str(path))).model.d_model == 256


def test_load_partial_json_keeps_defaults_and_rejects_unknown(tmp_path):
  path = tmp_path / "partial.json"
  path.write_text(json.dumps({"model": {"n_layers": 3}}))
  assert config.resolve(config.load_file(str(path))).model.n_layers == 3
  path.write_text(json.dumps({"model": {"n_layer": 3}}))
  with pytest.raises(ValueError, match=r"^model\.n_layer: unknown config field \(did you mean model\.n_layers\?\)"):
    config.load_file(str(path))
  path.write_text("{not json")
  with pytest.raises(ValueError, match="partial.json: not valid JSON"):
    config.load_file(str(path))
  with pytest.raises(ValueError, match="no such config file"):
    config.load_file(str(tmp_path / "absent.json"))


def test_moe_layer_mask():
  assert config.moe_layer_mask(4, "all") == (True,) * 4
  assert config.moe_layer_mask(4, "second_half") == (False, False, True, True)
  assert config.moe_layer_mask(4, "alternate") == (False, True, False, True)
