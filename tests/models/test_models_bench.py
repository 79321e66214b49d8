"""`mixlaws bench model`: its cases resolve to the configs the targets speak of; bad input fails in one line."""

from click.testing import CliRunner

from mixlaws import cli, config, counting
from mixlaws.bench import model as bench_model


def test_every_case_resolves_and_the_sweep_keeps_active_flops_equal():
  base = config.apply_overrides(config.base_config(), bench_model.MODEL_OVERRIDES)
  names = [name for name, _ in bench_model.cases()]
  assert len(names) == len(set(names)) and names[0] == "dense"
  dense = bench_model.case_config(base, dict(bench_model.cases())["dense"])
  assert not dense.moe.is_moe
  assert 19e6 < counting.param_counts(counting.Shape.from_config(dense)).non_embedding < 21e6
  routers, sweep = set(), set()
  for _, overrides in bench_model.cases():
    cfg = bench_model.case_config(base, overrides)
    routers.add((cfg.moe.router, cfg.moe.dispatch) if cfg.moe.is_moe else "dense")
    if cfg.moe.router == "token_choice" and cfg.moe.dispatch == bench_model.CPU_DISPATCH:
      assert cfg.moe.expansion_rate == 8 and cfg.moe.top_k == cfg.moe.granularity  # G active experts of width d_ff/G
      active = counting.param_counts(counting.Shape.from_config(cfg)).ffn_active
      assert active == counting.param_counts(counting.Shape.from_config(dense)).ffn_active
      sweep.add(cfg.moe.granularity)
  assert sweep == set(bench_model.SWEEP_GRANULARITIES)
  assert len(routers) == 1 + 3 * 3 + 1  # dense, three dispatches for each sparse router, mixture of tokens


def test_bench_model_rejects_bad_input_in_one_line():
  result = CliRunner().invoke(cli.main, ["bench", "model", "-o", "moe.dispatch=scatter"])
  assert result.exit_code == 2 and result.output.strip().splitlines() == [
    "error: moe.dispatch: unknown value 'scatter'; expected one of einsum, gather, ragged"
  ]
  result = CliRunner().invoke(cli.main, ["bench", "model", "--rounds", "0"])
  assert result.exit_code == 2 and "--rounds must be positive" in result.output
