"""The paper studies against the papers' own tables (tests/oracles), the Eq. 8 rule, and the CPU variants."""

import math
from collections import Counter

import paper_tables
import pytest

from mixlaws import config, registry


@pytest.fixture(scope="module")
def krajewski():
  return registry.expand("krajewski2024")


@pytest.fixture(scope="module")
def ludziejewski():
  return registry.expand("ludziejewski2025")


def _shape(spec):
  m = spec.config.model
  return m.d_model, m.n_layers, m.n_heads


def test_krajewski2024_is_tables_3_4_and_7(krajewski):
  family = {64: "moe64", 1: "dense", 16: "moe16"}
  expected = Counter()
  names = {}
  for row in paper_tables.read("krajewski2024_table3_4.csv"):
    shape = (int(row["d_model"]), int(row["n_blocks"]), int(row["n_heads"]))
    for tokens in row["tokens"].split():
      for g in row["granularities"].split():
        expected[(row["family"], *shape, round(float(tokens)), int(g))] += 1
    names[(row["family"], *shape)] = row["name"]
  got = Counter(
    (family[s.config.moe.expansion_rate], *_shape(s), s.config.train.tokens, s.config.moe.granularity)
    for s in krajewski
  )
  assert len(krajewski) == 168 == sum(expected.values())
  assert got == expected
  for s in krajewski:
    fam = family[s.config.moe.expansion_rate]
    name = names[(fam, *_shape(s))]
    if fam == "moe16" and name == "64x7M":
      continue  # Table 7 labels d256/8 blocks (N_act 6.3M) "64x7M"; Table 4 calls that size 6M
    printed = name.split("x")[-1]
    n_act = s.counts.conventions["krajewski2024"].active_params  # 12·d²·n, routing excluded
    assert abs(n_act - paper_tables.parse_size(printed)) <= paper_tables.printed_precision(printed), (s.run_id, name)


def test_krajewski2024_recipe(krajewski):
  cfg = krajewski[0].config
  assert (cfg.moe.router, cfg.moe.group_size, cfg.moe.output_norm) == ("expert_choice", 256, True)
  assert (cfg.model.activation, cfg.model.d_ff, cfg.model.seq_len) == ("gelu", 4 * cfg.model.d_model, 256)
  assert (cfg.train.batch_size, cfg.train.lr, cfg.train.final_lr_fraction, cfg.train.warmup_fraction) == (
    2048,
    2e-4,
    0.1,
    0.01,
  )


def test_ludziejewski2025_is_appendix_e(ludziejewski):
  rows = paper_tables.read("ludziejewski2025_appendix_e.csv")
  assert len(rows) == 53
  expected = Counter()
  printed = {}
  for row in rows:
    key = (int(row["d_model"]), int(row["n_blocks"]), int(row["n_heads"]), int(row["experts"]))
    printed[key] = (row["n_total"], row["n_act"])
    for d in row["d_values"].split():
      expected[(*key, round(paper_tables.parse_size(d)))] += 1
  points = [s for s in ludziejewski if s.is_point]  # WSD branches (PAPERS.md §2.6): one per (N, D)
  got = Counter((*_shape(s), s.config.moe.expansion_rate, s.config.train.tokens) for s in points)
  assert len(points) == 270 == sum(expected.values())
  assert got == expected
  assert len({k[:4] for k in got}) == len(printed)  # 53 rows, two pairs of which share a model
  assert all(s.lineage.role == "branch" for s in points) and len(ludziejewski) - len(points) == 51  # one trunk each
  for s in points:
    n_total, n_act = printed[(*_shape(s), s.config.moe.expansion_rate)]
    count = s.counts.conventions["ludziejewski2025"]
    assert abs(count.active_params - paper_tables.parse_size(n_act)) <= paper_tables.printed_precision(n_act)
    if n_total:  # blank for the last row in the paper
      assert abs(count.params - paper_tables.parse_size(n_total)) <= paper_tables.printed_precision(n_total)


def test_ludziejewski2025_recipe_and_derived_lr(ludziejewski):
  for s in ludziejewski:
    assert s.config.train.lr == pytest.approx(
      registry.eq8_lr(registry.eq8_params(s.config), s.config.moe.expansion_rate)
    )
  cfg = next(s for s in ludziejewski if s.is_point).config
  assert (cfg.moe.router, cfg.moe.top_k, cfg.moe.z_loss_weight, cfg.moe.load_balance_weight) == (
    "switch",
    1,
    1e-3,
    1e-2,
  )
  assert (cfg.train.schedule, cfg.train.warmup_tokens, cfg.train.decay_fraction) == ("wsd", 130_000_000, 0.2)
  assert cfg.train.batch_rampup == "128:500000000,256:1000000000" and cfg.model.seq_len == 512


def test_eq8_reproduces_the_30m_values():
  # PAPERS.md §2.6: d = 256, 4 blocks, E = 1 → 2^-8.04 counting embeddings, 2^-5.52 without.
  base = config.base_config()
  base.model.seq_len = 512
  cfg = registry.resolve_point(base, {"model.d_model": 256, "model.n_layers": 4})
  assert math.log2(registry.lr_eq8()(cfg)) == pytest.approx(-8.04, abs=0.005)
  assert math.log2(registry.lr_eq8(with_embeddings=False)(cfg)) == pytest.approx(-5.52, abs=0.005)


@pytest.mark.parametrize("name", registry.studies())
def test_every_variant_validates_on_8_devices(name):
  variants = registry.variants(name)
  if name == "smoke":
    assert variants == ()
    specs = registry.expand(name, n_devices=8)
  elif name == "krajewski2024":
    assert variants == ("tiny", "wsd", "tiny-wsd")
    specs = registry.expand(name, "tiny", n_devices=8) + registry.expand(name, "tiny-wsd", n_devices=8)
  else:
    assert variants == ("tiny",)
    specs = registry.expand(name, "tiny", n_devices=8)
  assert specs and len({s.study for s in specs}) == (2 if name == "krajewski2024" else 1)
  for s in specs:
    assert s.config.data.source == "stdlib" and s.config.data.tokenizer == "byte"
    assert s.config.model.vocab_size == config.BYTE_VOCAB_SIZE
    assert s.config.model.d_model <= 160 and s.config.model.n_layers <= 9 and s.counts.tokens <= 8_100_000


@pytest.mark.parametrize("name", ["krajewski2024", "antoniak2023_mot", "krajewski2025_50b"])
def test_tiny_keeps_the_structure(name):
  full, tiny = registry.expand(name), registry.expand(name, "tiny")
  assert len(full) == len(tiny)

  def structure(s):
    moe = s.config.moe
    return moe.expansion_rate, moe.granularity, moe.top_k, moe.router, moe.layers, moe.group_size > 0

  assert [structure(s) for s in full] == [structure(s) for s in tiny]


def test_smoke_is_cpu_sized_and_varies_n_d_e_g():
  specs = registry.expand("smoke", n_devices=8)
  assert 10 <= len(specs) <= 16
  assert all(1e10 <= s.counts.flops("chinchilla") <= 1.1e12 for s in specs)
  moe = [s.config.moe for s in specs if s.config.moe.is_moe]
  assert len({m.expansion_rate for m in moe}) >= 2 and len({m.granularity for m in moe}) >= 2
  dense = [s for s in specs if not s.config.moe.is_moe]
  assert len({s.counts.params.total for s in dense}) >= 3 and len({s.counts.tokens for s in specs}) >= 2
  assert all(s.config.train.batch_size % 8 == 0 for s in specs)
