"""The mesh planner: a fitting layout for a small TPU topology, one-line errors, device memory limits."""

import dataclasses

import pytest
from click.testing import CliRunner

from mixlaws import cli, config, planner, preflight, sharding

TINY = ("model.d_model=32", "model.n_heads=2", "model.n_layers=1", "model.vocab_size=259", "model.seq_len=16",
        "train.batch_size=8", "train.tokens=0", "train.steps=2", "moe.expansion_rate=4", "moe.router=token_choice", "moe.top_k=1")  # fmt: skip


def _cfg(*overrides):
  return config.resolve(config.apply_overrides(config.base_config(), list(TINY) + list(overrides)))


def test_planner_finds_a_fitting_mesh_on_v5e_2x2_and_confirms_it_by_compiling(tmp_path):
  where = planner.parse_slice("v5e:2x2")
  assert (where.n_devices, where.memory_bytes) == (4, 16 * 2**30)
  plan = planner.plan_run(_cfg(), where, planner.preflight_compiler(where, str(tmp_path)), max_compiles=1)
  lay = plan.layout
  assert plan.fits and not plan.pinned and plan.compiled.fits
  assert lay.data * lay.fsdp * lay.tensor * lay.expert == 4 and 4 % lay.expert == 0
  assert 0 < plan.compiled.argument_bytes <= plan.compiled.bytes_per_device


def test_candidates_divide_the_slice_batch_heads_and_experts():
  cfg = _cfg()
  layouts = planner.candidates(cfg, 8)
  assert layouts and all(lay.data * lay.fsdp * lay.tensor * lay.expert == 8 for lay in layouts)
  assert all(4 % lay.expert == 0 and 2 % lay.tensor == 0 for lay in layouts)  # E·G = 4 experts, 2 heads
  assert {lay.expert for lay in layouts} == {1, 2, 4}


def test_a_too_large_run_names_the_smallest_slice_that_would_fit():
  # 32 blocks at d = 4096 ≈ 6.4B parameters: 16 bytes each (float32 weights, gradients, 2 AdamW moments)
  # ≈ 96 GiB, more than 4 v5e chips' 4 × 14.4 GiB usable, less than 16 chips' 230 GiB.
  cfg = _cfg("model.d_model=4096", "model.n_heads=32", "model.n_layers=32", "moe.expansion_rate=1",
             "model.seq_len=512", "train.batch_size=64")  # fmt: skip
  plan = planner.plan_run(cfg, planner.parse_slice("v5e-4"))
  assert not plan.fits and plan.smallest_fitting in ("v5litepod-8", "v5litepod-16", "v5litepod-32")
  assert planner.plan_run(cfg, planner.parse_slice(plan.smallest_fitting)).fits


def test_a_pinned_mesh_that_does_not_fit_the_topology_is_one_line_naming_the_field():
  with pytest.raises(
    ValueError, match=r"^mesh\.fsdp: the mesh axes multiply to 8 \(mesh\.fsdp=8\), but there are 4 devices$"
  ):
    planner.plan_run(_cfg("mesh.data=1", "mesh.fsdp=8"), planner.parse_slice("v5e:2x2"))
  for bad in ("v9:2x2", "v5p-7", "v5e:2xq"):
    with pytest.raises(ValueError) as e:
      planner.parse_slice(bad)
    assert "\n" not in str(e.value)


def test_plan_preflight_of_an_impossible_slice_is_one_line():
  result = CliRunner().invoke(cli.main, ["plan", "smoke", "--preflight", "v5p-7"])
  assert result.exit_code == 2 and result.output.count("\n") == 1 and "accelerator type" in result.output


@dataclasses.dataclass
class FakeDevice:
  platform: str
  device_kind: str
  stats: dict | None

  def memory_stats(self):
    return self.stats


def test_a_local_gpu_limit_is_the_devices_memory_not_host_memory():
  h100 = [FakeDevice("gpu", "NVIDIA H100 80GB HBM3", {"bytes_limit": 79 * 2**30})] * 2
  _, _, limit = preflight.target_devices(None, 2, h100)
  assert limit == 79 * 2**30  # what the allocator may use
  no_stats = [FakeDevice("gpu", "NVIDIA H100 80GB HBM3", None)]
  assert preflight.target_devices(None, 1, no_stats)[2] == 80e9  # the accelerators table
  with pytest.raises(ValueError, match="cannot tell the memory"):
    preflight.target_devices(None, 1, [FakeDevice("gpu", "Mystery GPU", {})])
  slice_ = planner.parse_slice("local:2", h100)
  assert slice_.memory_bytes == 79 * 2**30 and slice_.n_devices == 2


def test_topology_verdicts_are_cached_on_disk_by_config_and_sources(tmp_path, monkeypatch):
  where = planner.parse_slice("v5e:2x2")
  compiled = []

  def fake_preflight(cfg, topology=None, n_devices=None):
    compiled.append(cfg)
    return preflight.Verdict(topology, 4, 123, 16 * 2**30, True, 100, 20)

  monkeypatch.setattr(preflight, "preflight", fake_preflight)
  compile_fn = planner.preflight_compiler(where, cache_dir=str(tmp_path))
  first, again = compile_fn(_cfg()), compile_fn(_cfg())
  assert first == again and len(compiled) == 1 and len(list(tmp_path.glob("*.json"))) == 1
  compile_fn(_cfg("model.remat=block"))  # another shape compiles
  assert len(compiled) == 2


def test_meshes_that_jax_make_mesh_cannot_lay_out_split_physical_axes():
  devices, _, _ = preflight.target_devices("v5p:4x4x4", None)  # jax.make_mesh raises NotImplementedError here
  mesh = sharding.make_mesh(config.MeshConfig(data=1, fsdp=8, expert=8), devices)
  assert dict(mesh.shape) == {"data": 1, "fsdp": 8, "tensor": 1, "expert": 8}
  assert len({d.id for d in mesh.devices.flat}) == 64


def test_paper_studies_declare_a_slice_per_run_and_small_runs_get_small_slices():
  from mixlaws import registry

  specs = registry.expand("krajewski2025_50b")
  groups = registry.group_by_slice(specs)
  assert set(groups) == {"v5p-512", "v5p-1024"}  # 11B on 256 chips, 56B on 512 (estimated fit)
  assert {s.config.model.d_model for s in groups["v5p-1024"]} == {4096}
  plans = planner.plan_specs(specs, "declared", compile=False)
  assert all(p.fits and p.estimate_bytes <= planner.DECLARE_HEADROOM * p.memory_bytes for p in plans)
