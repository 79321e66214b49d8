"""Counts against the papers' tables (PAPERS.md §1.4-1.8, §2.5-2.7) and hand computations."""

import math

import paper_tables
import pytest

from mixlaws import config, counting


def _cfg(*overrides):
  return config.resolve(config.apply_overrides(config.base_config(), list(overrides)))


def _krajewski_cfg(d_model, n_blocks, n_heads, expansion_rate=64, granularity=1):
  """Krajewski et al. 2024 models: GELU FFN of 4·d_model, expert choice at E = 64."""
  return _cfg(
      f"model.d_model={d_model}", f"model.n_layers={n_blocks}", f"model.n_heads={n_heads}",
      "model.activation=gelu", "model.ffn_multiplier=4.0", "model.seq_len=256",
      "moe.router=expert_choice", f"moe.expansion_rate={expansion_rate}", f"moe.granularity={granularity}",
      "train.batch_size=2048",
  )  # fmt: skip


@pytest.mark.parametrize(
  "row",
  paper_tables.read("ludziejewski2025_appendix_e.csv"),
  ids=lambda r: f"d{r['d_model']}-n{r['n_blocks']}-E{r['experts']}",
)
def test_ludziejewski_appendix_e_counts(row):
  # Ludziejewski et al. 2025, Appendix E with Eq. 9/10 (d_vocab = 50257, SwiGLU experts of 3·d).
  cfg = _cfg(
      f"model.d_model={row['d_model']}", f"model.n_layers={row['n_blocks']}", f"model.n_heads={row['n_heads']}",
      f"moe.expansion_rate={row['experts']}",
  )  # fmt: skip
  count = counting.run_counts(cfg).conventions["ludziejewski2025"]
  for printed, value in ((row["n_act"], count.active_params), (row["n_total"], count.params)):
    if printed:
      assert abs(value - paper_tables.parse_size(printed)) <= paper_tables.printed_precision(printed), (printed, value)
  d, n, e = int(row["d_model"]), int(row["n_blocks"]), int(row["experts"])
  assert count.params == 2 * d * 50257 + (4 + 9 * e) * n * d * d  # Eq. 9, exactly
  assert count.active_params == 2 * d * 50257 + 13 * n * d * d  # Eq. 10, exactly


def test_ludziejewski_done_row_exact():
  # PAPERS.md §2.7: d = 1024, 16 blocks, E = 32 → N_total = 5.002B, N_act = 321.0M.
  count = counting.run_counts(_cfg("model.d_model=1024", "model.n_layers=16", "moe.expansion_rate=32"))
  lz = count.conventions["ludziejewski2025"]
  assert round(lz.params / 1e6) == 5002 and round(lz.active_params / 1e5) == 3210
  assert lz.flops_per_token == 6 * lz.active_params


@pytest.mark.parametrize(
  "row",
  [r for r in paper_tables.read("krajewski2024_table3_4.csv")],
  ids=lambda r: f"{r['family']}-{r['name']}-d{r['d_model']}",
)
def test_krajewski_table3_names(row):
  # Krajewski et al. 2024 Tables 3-4: N_act = 12·d²·n matches the name at every G; N = d²(8E+4)n.
  d, n = int(row["d_model"]), int(row["n_blocks"])
  name_act = paper_tables.parse_size(row["name"].split("x")[-1])
  expansion = 1 if row["family"] == "dense" else 64 if row["family"] == "moe64" else 16
  for g in map(int, row["granularities"].split()):
    cfg = _krajewski_cfg(d, n, int(row["n_heads"]), expansion, g)
    kr = counting.run_counts(cfg).conventions["krajewski2024"]
    assert kr.active_params == 12 * d * d * n
    assert kr.params == d * d * (8 * expansion + 4) * n
    if row["family"] != "moe16":  # Table 7 keeps the "64x" names of the E = 64 grid
      assert abs(kr.active_params - name_act) <= 0.5e6 + 0.02 * name_act


@pytest.mark.parametrize("row", paper_tables.read("krajewski2024_table2.csv"), ids=lambda r: r["n_act"])
def test_krajewski_table2_flops(row):
  # Krajewski et al. 2024 Eq. 10 with c_f = 6, c_r = 14 and d = 64n: FLOPs column within 0.5% (§1.8).
  n_blocks = counting.blocks_for_active_params(float(row["n_act"]))
  shape = counting.Shape.paper(64 * n_blocks, n_blocks, expansion_rate=64, granularity=int(row["granularity"]))
  flops = counting.training_flops(shape, float(row["tokens"]), "krajewski2024")
  assert flops == pytest.approx(float(row["flops"]), rel=0.005)


def test_krajewski_router_cost_grows_with_granularity():
  flops = [
    counting.convention_count(counting.Shape.paper(512, 8, 64, g), "krajewski2024").flops_per_token
    for g in (1, 2, 4, 8)
  ]
  d, n = 512, 8
  assert flops == [(12 * d * d * 6 + d * 64 * g * 14) * n for g in (1, 2, 4, 8)]


def test_chinchilla_convention_by_hand():
  # Hoffmann et al. 2022, Appendix F, for a tiny dense shape, computed term by term.
  cfg = _cfg("model.d_model=128", "model.n_layers=2", "model.n_heads=2", "model.vocab_size=1000",
             "model.seq_len=64", "model.activation=gelu", "model.ffn_multiplier=4.0")  # fmt: skip
  d, L, V, T, H, F = 128, 2, 1000, 64, 2, 512
  attn = 2 * 3 * d * d + 2 * T * d + 3 * H * T + 2 * T * d + 2 * d * d
  forward = 2 * V * d + L * (attn + 2 * 2 * d * F) + 2 * d * V
  assert counting.run_counts(cfg).conventions["chinchilla"].flops_per_token == 3 * forward


def test_kaplan_convention_by_hand():
  cfg = _cfg(
    "model.d_model=128", "model.n_layers=2", "model.seq_len=64", "model.activation=gelu", "model.ffn_multiplier=4.0"
  )
  n = 12 * 2 * 128 * 128  # Kaplan et al. 2020: N = 2·d·n_layer·(2·d_attn + d_ff) = 12·n_layer·d²
  kp = counting.run_counts(cfg).conventions["kaplan"]
  assert kp.params == n
  assert kp.flops_per_token == 6 * n + 6 * 2 * 64 * 128


def test_components_sum_and_moe_variants():
  dense = counting.run_counts(_cfg("model.d_model=256", "model.n_layers=4")).params
  moe = counting.run_counts(_cfg("model.d_model=256", "model.n_layers=4", "moe.expansion_rate=8",
                                 "moe.granularity=2", "moe.router=token_choice", "moe.n_shared_experts=1")).params  # fmt: skip
  assert dense.total == dense.embedding + dense.unembedding + dense.attention + dense.ffn + dense.router + dense.norms
  assert moe.attention == dense.attention
  expert = 3 * 256 * 768 // 2
  assert moe.ffn == 4 * (16 + 1) * expert
  assert moe.ffn_active == 4 * (2 + 1) * expert  # top_k = G = 2 routed plus one shared
  assert moe.router == 4 * 256 * 16
  assert dense.active == dense.total


def test_moe_layer_patterns_and_ties():
  half = counting.run_counts(_cfg("model.n_layers=8", "moe.expansion_rate=4", "moe.layers=second_half")).params
  every = counting.run_counts(_cfg("model.n_layers=8", "moe.expansion_rate=4")).params
  assert half.router * 2 == every.router
  tied = counting.run_counts(_cfg("model.tied_embeddings=true", "model.positional=learned")).params
  assert tied.unembedding == 0 and tied.embedding == 50257 * 512 + 512 * 512


def test_expert_choice_output_norm_counted():
  on = counting.run_counts(_cfg("moe.expansion_rate=4", "moe.router=expert_choice")).params
  off = counting.run_counts(_cfg("moe.expansion_rate=4", "moe.router=expert_choice", "moe.output_norm=false")).params
  assert on.norms - off.norms == 8 * 512


def test_shape_rule():
  assert counting.shape_from_blocks(16) == (1024, 16)
  assert math.isclose(counting.blocks_for_active_params(12 * 64**2 * 8**3), 8)
