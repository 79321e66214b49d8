"""Sweeps, derived fields, run ids, the config.json record, filters, costs and every bad-input error."""

import dataclasses
import json
import subprocess
import sys

import pytest

from mixlaws import budget, config, counting, registry, rundir


@pytest.fixture(scope="module")
def smoke():
  return registry.expand("smoke")


def _tiny_base():
  base = config.base_config()
  base.model.vocab_size = config.BYTE_VOCAB_SIZE
  base.model.seq_len = 64
  base.train.batch_size = 8
  return base


def test_sweep_algebra():
  grid = registry.product(registry.axis("a.x", [1, 2]), registry.zip_fields({"a.y": [3, 4], "a.z": [5, 6]}))
  assert grid == [
    {"a.x": 1, "a.y": 3, "a.z": 5},
    {"a.x": 1, "a.y": 4, "a.z": 6},
    {"a.x": 2, "a.y": 3, "a.z": 5},
    {"a.x": 2, "a.y": 4, "a.z": 6},
  ]
  assert registry.chain(grid[:1], grid[3:]) == [grid[0], grid[3]]
  with pytest.raises(ValueError, match="zip_fields: value lists differ in length"):
    registry.zip_fields({"a.y": [1, 2], "a.z": [1]})
  assert registry.size_rule([4, 12]) == [
    {"model.d_model": 256, "model.n_layers": 4, "model.n_heads": 4},
    {"model.d_model": 768, "model.n_layers": 12, "model.n_heads": 12},
  ]
  with pytest.raises(ValueError, match="sizes: unknown size 'xl'"):
    registry.sizes({"s": {}}, ["xl"])


def test_derived_fields_see_the_values_before_them():
  point = {"model.d_model": 64, "model.n_layers": 2, "train.tokens": registry.tokens_per_param(20)}
  cfg = registry.resolve_point(_tiny_base(), point)
  n_act = counting.convention_count(counting.Shape.from_config(cfg), "ludziejewski2025").active_params
  assert cfg.train.tokens == round(20 * n_act) and cfg.model.d_model == 64
  # A study-level derived field runs after the point's own, and sees the tokens it set.
  cfg = registry.resolve_point(_tiny_base(), point, {"train.eval_tokens": lambda c: c.train.tokens // 10})
  assert cfg.train.eval_tokens == cfg.train.tokens // 10
  cfg = registry.resolve_point(_tiny_base(), {"train.tokens": registry.tokens_for_flops(1e12)})
  per_token = counting.convention_count(counting.Shape.from_config(cfg), "chinchilla").flops_per_token
  assert cfg.train.tokens == round(1e12 / per_token)


def test_isoflop_grid_spends_each_budget_within_the_ratio_band():
  recipe = registry.IsoflopRecipe(_tiny_base(), registry.size_rule([2, 3, 4, 5], 16, 16), "chinchilla", 2, 200)
  grid = registry.isoflop_grid([1e11, 1e12], recipe)
  assert {p["model.n_layers"] for p in grid} == {2, 3, 4}  # n = 5 needs fewer than 2 tokens per parameter
  for p in grid:
    cfg = registry.resolve_point(recipe.base, p)
    count = counting.convention_count(counting.Shape.from_config(cfg), "chinchilla")
    flops = count.flops_per_token * cfg.train.tokens
    assert min(abs(flops / b - 1) for b in (1e11, 1e12)) < 1e-5  # tokens are whole
    assert 2 <= cfg.train.tokens / count.active_params <= 200


def test_batch_rampup_gives_the_papers_token_formula():
  base = config.base_config()
  base.train.batch_size = 512
  base.train.batch_rampup = registry.batch_rampup([(128, 5e8), (256, 1e9)])
  base.train.tokens = 20_000_000_000
  cfg = registry.resolve_point(base, {})
  for s in (100, 7629, 7630, 11443, 11444, 20000):
    # Ludziejewski et al. 2025 (PAPERS.md §2.6): tokens(s) = 512·(512 s − 128·min(s, 7629) − 256·min(s, 11443)).
    assert budget.tokens_after(cfg, s) == 512 * (512 * s - 128 * min(s, 7629) - 256 * min(s, 11443))


def test_run_ids_are_readable_and_stable_across_processes(smoke):
  ids = [s.run_id for s in smoke]
  assert ids[0].startswith("smoke-d32l2-262K-") and len(ids[0].rsplit("-", 1)[1]) == 8
  assert any("-tc8g2-" in i for i in ids)
  code = "from mixlaws import registry; print(' '.join(s.run_id for s in registry.expand('smoke')))"
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "7"}
  )
  assert out.stdout.split() == ids


def _changed(section: str, name: str, value):
  """Another value of the same type for one config field."""
  if name == "batch_rampup":
    return "4:1000"
  if isinstance(value, bool):
    return not value
  if isinstance(value, (int, float)):
    return value + 1
  if isinstance(value, str):
    return value + "x"
  if isinstance(value, tuple):
    return value[:-1]
  raise AssertionError(f"{section}.{name}: no mutation for {type(value).__name__}")


def test_run_id_changes_with_every_resolved_field(smoke):
  cfg = smoke[-1].config  # an MoE run: every section matters
  base_id = registry.run_id("smoke", cfg)
  assert base_id == smoke[-1].run_id
  n_fields = 0
  for section in dataclasses.fields(cfg):
    part = getattr(cfg, section.name)
    for field in dataclasses.fields(part):
      new = _changed(section.name, field.name, getattr(part, field.name))
      changed = dataclasses.replace(cfg, **{section.name: dataclasses.replace(part, **{field.name: new})})
      assert registry.run_id("smoke", changed) != base_id, f"{section.name}.{field.name}"
      n_fields += 1
  assert n_fields == sum(len(fields) for fields in cfg.to_dict().values())


def test_record_is_the_run_dir_contract(smoke, tmp_path):
  spec = smoke[-1]
  run = rundir.RunDir(tmp_path / spec.study / spec.run_id)
  assert run.write_config(spec.record())
  assert not run.write_config(spec.record())  # identical: written once, accepted again
  stored = run.read_config()
  assert set(stored) == {"study", "run_id", "config", "counts"}
  assert (stored["study"], stored["run_id"]) == ("smoke", spec.run_id)
  assert config.load_json(json.dumps(stored["config"])) == spec.config
  assert stored["counts"] == spec.counts.to_dict()
  assert stored["counts"]["tokens"] == budget.total_tokens(spec.config)


def test_filters(smoke):
  assert [s.run_id for s in registry.expand("smoke", filter="G>=2")] == [
    s.run_id for s in smoke if s.config.moe.granularity >= 2
  ]
  assert len(registry.expand("smoke", filter="g>=2, e=8")) == 2  # case-insensitive names, clauses all hold
  assert len(registry.expand("smoke", filter="router=dense,tokens<300K")) == 4
  assert len(registry.expand("smoke", filter="moe.expansion_rate!=1,params_active<85.5K")) == 2  # E = 4, G = 1
  assert registry.expand("smoke", filter="steps>1000") == []


def test_costs():
  cost = registry.Cost.of("v5p", 0.5)
  assert cost.peak_flops == 459e12
  specs = registry.expand("smoke")
  total = registry.totals(specs, cost, "kaplan")
  assert total["flops"] == pytest.approx(sum(s.counts.flops("kaplan") for s in specs))
  assert total["chip_hours"] == pytest.approx(total["flops"] / (459e12 * 0.5) / 3600)
  assert registry.Cost.of("H100", 0.4).peak_flops == 989e12


BAD_STUDY = registry.Study(
  name="bad",
  description="",
  base=_tiny_base(),
  sweep=[{"model.d_model": 64}, {"model.d_model": 250, "model.n_heads": 4}],
)


@pytest.mark.parametrize(
  "call, message",
  [
    (lambda: registry.load("krajewski"), "study: unknown 'krajewski' (did you mean krajewski2024?); expected one of"),
    (lambda: registry.load("smoke", "tiny"), "variant: smoke has no variant 'tiny'; expected one of (none)"),
    (lambda: registry.load("ludziejewski2025", "big"), "variant: ludziejewski2025 has no variant 'big'"),
    (
      lambda: registry.expand_study(BAD_STUDY),
      "bad run 1 (model.d_model=250, model.n_heads=4): model.d_model: 250 is not divisible by model.n_heads = 4",
    ),
    (
      lambda: registry.expand_study(dataclasses.replace(BAD_STUDY, sweep=[{"moe.granularty": 2}])),
      "bad run 0 (moe.granularty=2): moe.granularty: unknown config field (did you mean moe.granularity?)",
    ),
    (
      lambda: registry.expand_study(dataclasses.replace(BAD_STUDY, sweep=[{"train.tokens": "many"}])),
      "bad run 0 (train.tokens='many'): train.tokens: expected int",
    ),
    (
      lambda: registry.expand_study(
        dataclasses.replace(BAD_STUDY, sweep=[{"model.d_model": 64}, {"model.d_model": 64.0}])
      ),
      "bad: runs 0 and 1 are the same run bad-d64l8-2B-",
    ),
    (
      lambda: registry.expand_study(dataclasses.replace(BAD_STUDY, sweep=[{"mesh.fsdp": 2}]), n_devices=3),
      "bad run 0 (mesh.fsdp=2): mesh.fsdp: mesh.fsdp=2 does not divide the 3 devices",
    ),
    (lambda: registry.expand("smoke", filter="granularity>=4"), "filter: unknown field 'granularity'"),
    (lambda: registry.expand("smoke", filter="G>=4,G 4"), "filter: cannot parse 'G 4'; expected FIELD OP VALUE"),
    (lambda: registry.expand("smoke", filter="G>=four"), "filter: G is a number, got 'four'"),
    (
      lambda: registry.expand("smoke", filter="router>=switch"),
      "filter: router is text; compare it with = or !=, not >=",
    ),
    (
      lambda: registry.Cost.of("v9", 0.4),
      "accelerator: unknown 'v9'; expected one of v4, v5e, v5p, v6e, H100, H200, cpu",
    ),
    (lambda: registry.Cost.of("v5p", 1.5), "mfu: must lie in (0, 1], got 1.5"),
  ],
  ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_input_is_one_line(call, message):
  with pytest.raises(ValueError) as e:
    call()
  assert str(e.value).startswith(message), str(e.value)
  assert "\n" not in str(e.value)


def test_a_bad_filter_fails_before_the_study_loads(monkeypatch):
  monkeypatch.setattr(registry, "load", lambda *a: pytest.fail("the study was loaded before the filter was checked"))
  with pytest.raises(ValueError, match="filter: unknown field"):
    registry.expand("smoke", filter="nope=1")
