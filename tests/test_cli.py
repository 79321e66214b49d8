"""The command line: config show, count, and one-line errors."""

import json

from click.testing import CliRunner

from mixlaws import cli


def _run(*args):
  return CliRunner().invoke(cli.main, list(args))


def test_help_on_every_subcommand():
  result = _run("--help")
  assert result.exit_code == 0
  for name, command in cli.main.commands.items():
    sub = [name, "--help"]
    assert _run(*sub).exit_code == 0, name
    for child in getattr(command, "commands", {}):
      assert _run(name, child, "--help").exit_code == 0, (name, child)


def test_count_done_row():
  # The "done when": E = 32, d = 1024, 16 blocks → N_total 5.002B, N_act 321.0M (PAPERS.md §2.7).
  args = ["count", "-o", "model.d_model=1024", "-o", "model.n_layers=16", "-o", "moe.expansion_rate=32"]
  table = _run(*args)
  assert table.exit_code == 0
  assert "5.002B" in table.output and "321.0M" in table.output
  counts = json.loads(_run(*args, "--format", "json").output)
  assert counts["params_ludziejewski2025"] == 5_001_873_408
  assert counts["active_params_ludziejewski2025"] == 321_030_144


def test_config_show_resolves_and_reports_errors():
  shown = json.loads(_run("config", "show", "-o", "model.d_model=256", "--format", "json").output)
  assert shown["model"]["n_heads"] == 4 and shown["model"]["d_ff"] == 768
  bad = _run("config", "show", "-o", "model.d_model=250", "-o", "model.n_heads=3")
  assert bad.exit_code == 2
  assert bad.output.strip() == "error: model.d_model: 250 is not divisible by model.n_heads = 3"
