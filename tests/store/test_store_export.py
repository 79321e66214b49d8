"""Loss-table export: formats that parse back, golden Markdown and LaTeX, extra columns, the CLI."""

import io
import pathlib

import pandas as pd
import pytest
from click.testing import CliRunner

from mixlaws import cli, export, store

GOLDEN = pathlib.Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def table(toy, runs):
  root, _, _ = toy
  with store.open(root) as st:
    return export.loss_table(st, runs.STUDY, convention="krajewski2024", columns=("next_line/acc",))


def test_rows_are_sorted_as_papers_list_them(table):
  assert list(table.run_id) == [
    "toy-dense",
    "toy-e32",
    "toy-e32-running",
    "toy-e8g2",
  ]  # switch before token_choice, though E·G = 32 > 16
  assert list(table.columns[-4:]) == ["flops_krajewski2024", "loss", "state", "next_line/acc"]
  assert table.attrs["left_out"] == {"toy-e32-running": "state is running"}


def test_csv_and_parquet_parse_back_with_their_types(table, tmp_path):
  back = pd.read_csv(io.StringIO(export.write(table, "csv")))
  pd.testing.assert_frame_equal(back, table, check_dtype=False)
  export.write(table, "parquet", tmp_path / "t.parquet")
  back = pd.read_parquet(tmp_path / "t.parquet")
  pd.testing.assert_frame_equal(back, table)
  assert back.params_total.dtype == "int64" and back.loss.dtype == "float64" and back.granularity.dtype == "int64"
  with pytest.raises(ValueError, match=r"^out: Parquet is a binary format; give an output file \(--out PATH\)$"):
    export.write(table, "parquet")


def test_markdown_and_latex_match_golden_files(table):
  assert export.to_markdown(table) == (GOLDEN / "loss_table.md").read_text()
  assert export.to_latex(table) == (GOLDEN / "loss_table.tex").read_text()


def test_markdown_and_latex_parse_back(table):
  lines = export.to_markdown(table).splitlines()
  cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
  assert len(cells) == 2 + len(table) and all(len(row) == len(table.columns) for row in cells)
  assert [row[1] for row in cells[2:]] == list(table.run_id)
  assert [row[13] for row in cells[2:]] == [f"{v:.4f}" if v == v else "–" for v in table.loss]
  tex = export.to_latex(table).splitlines()
  assert tex[1] == r"\toprule" and tex[3] == r"\midrule" and tex[-2] == r"\bottomrule"
  body = [line.removesuffix(r" \\").split(" & ") for line in tex[4:-2]]
  assert [row[1] for row in body] == list(table.run_id) and all(len(row) == len(table.columns) for row in body)


def test_cell_formatting_and_escaping():
  frame = pd.DataFrame({"run_id": ["a_b&c|d"], "flops_kaplan": [3.1e18], "params_total": [25_200_000], "lr": [3e-4]})
  assert export.to_markdown(frame).splitlines()[2] == r"| a_b&c\|d | 3.10e18 | 25.20M | 0.0003 |"
  row = export.to_latex(frame).splitlines()[4]
  assert row == r"a\_b\&c|d & $3.10 \times 10^{18}$ & 25.20M & 0.0003 \\"


def test_unknown_inputs(toy, runs):
  root, _, _ = toy
  with store.open(root) as st:
    with pytest.raises(
      ValueError, match="^columns: 'nope' is neither a runs column nor a metric logged by study 'toy'$"
    ):
      export.loss_table(st, runs.STUDY, columns=("nope",))
    with pytest.raises(ValueError, match="^convention: unknown 'mine'"):
      export.loss_table(st, runs.STUDY, convention="mine")
    with pytest.raises(ValueError, match="^other: no runs in the results store .*; run `mixlaws collect other` first$"):
      export.loss_table(st, "other")
  with pytest.raises(ValueError, match="t.xlsx: cannot tell the format from the suffix; give --format$"):
    export.format_for(None, "t.xlsx")


def _cli(*args):
  return CliRunner().invoke(cli.main, [str(a) for a in args])


def test_cli_collect_export_and_curves(tmp_path, runs):
  written = runs.write_toy_study(tmp_path)
  result = _cli("collect", runs.STUDY, "--root", tmp_path)
  assert result.exit_code == 0 and result.output.startswith(f"{runs.STUDY}: 4 runs (4 updated), 12 new chunks")
  result = _cli("export", runs.STUDY, "--root", tmp_path, "--format", "csv", "--columns", "lr,next_line/acc")
  assert result.exit_code == 0
  back = pd.read_csv(io.StringIO(result.stdout)).set_index("run_id")
  assert back.loc["toy-e32-running", "lr"] == 1e-3 and back.loc["toy-e32", "next_line/acc"] == written["toy-e32"]["acc"]
  assert "note: 1 run(s) without a final_eval loss, e.g. toy-e32-running: state is running" in result.stderr
  out = tmp_path / "tables" / "losses.tex"
  result = _cli("export", runs.STUDY, "--root", tmp_path, "--out", out, "--loss", "smoothed_train", "--window", "3")
  assert result.exit_code == 0 and out.read_text().startswith(r"\begin{tabular}")
  result = _cli("curves", runs.STUDY, "--root", tmp_path, "--out", tmp_path / "c.parquet", "--names", "all")
  curves = pd.read_parquet(tmp_path / "c.parquet")
  assert result.exit_code == 0 and set(curves.name) == {"loss", "lr", "grad_norm", "next_line/acc"}
  for args, message in (
    (("collect", "toy", "--root", tmp_path / "x"), f"error: {tmp_path / 'x'}: run root does not exist"),
    (("export", "toy", "--root", tmp_path / "x"), f"error: {tmp_path / 'x' / 'results.sqlite'}: no results store"),
    (("export", "toy", "--root", tmp_path, "--window", "0"), "error: window: a record count must be at least 1, got 0"),
    (("export", "toy", "--root", tmp_path, "--format", "parquet"), "error: out: Parquet is a binary format"),
    (("curves", "nope", "--root", tmp_path), "error: nope: no runs in the results store"),
    (("curves", "toy", "--root", tmp_path, "--out", tmp_path / "c.md"), "curves are written as csv or parquet"),
  ):
    result = _cli(*args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, args
    assert message in result.output, (args, result.output)
