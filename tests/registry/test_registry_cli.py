"""`mixlaws studies` and `mixlaws plan`: outputs and one-line errors."""

import csv
import io
import json

import pytest
from click.testing import CliRunner

from mixlaws import cli, registry


def _run(*args):
  return CliRunner().invoke(cli.main, list(args))


def test_studies_lists_every_study_and_variant(monkeypatch):
  result = _run("studies", "--format", "json")
  assert result.exit_code == 0, result.output
  listed = json.loads(result.stdout)
  rows = {r["study"]: r for r in listed}
  expected = {name for name in registry.studies()} | {f"{n}-tiny" for n in registry.studies() if n != "smoke"}
  assert set(rows) == expected | {"krajewski2024-wsd", "krajewski2024-tiny-wsd"}
  # ludziejewski2025: 270 (N, D) points as WSD branches of 51 trunks; krajewski2024-wsd: 160 branches, 51 trunks,
  # 8 shapes with a single budget trained alone.
  assert (rows["krajewski2024"]["runs"], rows["ludziejewski2025"]["runs"], rows["smoke"]["runs"]) == (168, 321, 16)
  assert rows["krajewski2024-wsd"]["runs"] == 168 + 51
  smoke = registry.expand("smoke")
  assert rows["smoke"]["flops"] == pytest.approx(sum(s.counts.flops("chinchilla") for s in smoke))
  monkeypatch.setattr(registry, "summary", lambda: listed)  # the table shows the same rows; expand once only
  table = _run("studies")
  assert table.exit_code == 0 and "krajewski2024-tiny" in table.output and "270" in table.output


def test_plan_csv_has_one_row_per_run():
  result = _run("plan", "smoke", "--format", "csv", "--filter", "E>=4")
  assert result.exit_code == 0, result.output
  rows = list(csv.DictReader(io.StringIO(result.stdout)))
  specs = registry.expand("smoke", filter="E>=4")
  assert [r["run_id"] for r in rows] == [s.run_id for s in specs] and len(rows) == 8
  assert list(rows[0]) == list(cli.PLAN_COLUMNS)
  assert {r["router"] for r in rows} == {"token_choice"} and int(rows[0]["params_total"]) == int(
    specs[0].counts.params.total
  )
  assert result.stderr.startswith("8 runs, ") and "chip-hours on v5p" in result.stderr


def test_plan_json_totals_and_chip_hours():
  result = _run(
    "plan", "krajewski2024", "--format", "json", "--filter", "G=16,E=64", "--accelerator", "v6e", "--mfu", "0.5"
  )
  assert result.exit_code == 0, result.output
  plan = json.loads(result.stdout)
  assert len(plan["runs"]) == 13 and all(r["G"] == 16 for r in plan["runs"])
  total = plan["totals"]
  assert total["flops"] == pytest.approx(sum(r["flops"] for r in plan["runs"]))
  assert total["chip_hours"] == pytest.approx(total["flops"] / (918e12 * 0.5) / 3600)
  papers = json.loads(_run("plan", "krajewski2024", "--format", "json", "--convention", "krajewski2024").stdout)
  spec = registry.expand("krajewski2024")[0]
  assert papers["runs"][0]["flops"] == pytest.approx(spec.counts.flops("krajewski2024"))


def test_plan_table_and_tiny_variant():
  result = _run("plan", "antoniak2023_mot", "--variant", "tiny")
  assert result.exit_code == 0, result.output
  assert "antoniak2023_mot (tiny)" in result.output and "mot" in result.output
  assert result.output.strip().splitlines()[-1].startswith("15 runs, ")


def test_plan_on_cpu_uses_the_in_process_peak(monkeypatch):
  from mixlaws import bench

  monkeypatch.setattr(bench, "matmul_peak_flops", lambda: 2.5e10)  # the measurement itself is bench's concern
  plan = json.loads(_run("plan", "smoke", "--format", "json", "--accelerator", "cpu", "--mfu", "1").stdout)
  assert plan["totals"]["peak_flops"] == 2.5e10
  assert plan["totals"]["chip_hours"] == pytest.approx(plan["totals"]["flops"] / 2.5e10 / 3600)


@pytest.mark.parametrize(
  "args, message",
  [
    (["plan", "smok"], "error: study: unknown 'smok' (did you mean smoke?)"),
    (["plan", "smoke", "--variant", "tiny"], "error: variant: smoke has no variant 'tiny'"),
    (["plan", "smoke", "--filter", "experts>=2"], "error: filter: unknown field 'experts'"),
    (["plan", "smoke", "--accelerator", "tpu"], "error: accelerator: unknown 'tpu'"),
    (["plan", "smoke", "--mfu", "0"], "error: mfu: must lie in (0, 1], got 0.0"),
  ],
)
def test_plan_errors_are_one_line(args, message):
  result = _run(*args)
  assert result.exit_code == 2
  assert result.stderr.startswith(message) and result.stderr.count("\n") == 1 and result.stdout == ""


MY_STUDY = """
from mixlaws import config, registry


def get_study(variant=None):
  base = config.base_config()
  base.model.vocab_size = config.BYTE_VOCAB_SIZE
  return registry.Study("{name}", "two widths", base, registry.axis("model.d_model", [64, 128]))
"""


def test_a_study_file_anywhere_is_planned_and_run_under_its_file_name(tmp_path):
  path = tmp_path / "my_study.py"
  path.write_text(MY_STUDY.format(name="my_study"))
  result = _run("plan", str(path), "--format", "csv")
  assert result.exit_code == 0, result.output
  rows = list(csv.DictReader(io.StringIO(result.stdout)))
  assert [row["d_model"] for row in rows] == ["64", "128"] and all(r["run_id"].startswith("my_study-") for r in rows)
  dry = _run("run", str(path), "--root", str(tmp_path / "runs"), "--dry-run")
  assert dry.exit_code == 0 and "runs/my_study (not written" in dry.output and dry.output.endswith("-- my_study\n")
  assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
  "content, message",
  [
    (None, "no such file"),
    ("x = 1", "must define get_study(variant=None)"),
    (MY_STUDY.format(name="other"), "returns a study named 'other'; name it 'my_study'"),
  ],
)
def test_study_file_errors_name_the_file(tmp_path, content, message):
  path = tmp_path / "my_study.py"
  if content is not None:
    path.write_text(content)
  result = _run("plan", str(path))
  assert result.exit_code == 2 and f"error: study: {path}" in result.stderr and message in result.stderr
