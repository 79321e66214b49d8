"""Every command the README shows runs, in order, in an empty directory; the outputs it shows are real."""

import json
import pathlib
import re
import shlex

import pandas as pd
from click.testing import CliRunner

from mixlaws import cli
from mixlaws.bench import suite

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def shown() -> list[tuple[str, str]]:
  """(command, the text block shown right after it or "") for each line of every sh block, in order."""
  matches = list(FENCE.finditer(README))
  steps = []
  for i, match in enumerate(matches):
    if match.group(1) != "sh":
      continue
    after = ""
    following = matches[i + 1] if i + 1 < len(matches) else None
    if following and following.group(1) == "text" and not README[match.end() : following.start()].strip():
      after = following.group(2)
    lines = [line for line in match.group(2).splitlines() if line.strip()]
    assert all(line.startswith("mixlaws ") for line in lines), lines
    steps += [(line, after if j == len(lines) - 1 else "") for j, line in enumerate(lines)]
  return steps


def _normal(text: str) -> str:
  return " ".join(text.split())


def test_the_readme_starts_with_the_two_commands():
  first = FENCE.search(README)
  assert first.start() == 0
  assert [line.split("#")[0].strip() for line in first.group(2).splitlines()] == ["make demo", "make test"]


def test_every_readme_command_runs_and_prints_what_the_readme_shows(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "tests").symlink_to(REPO / "tests")  # the README's CSV example runs from the repository root
  study = next(m.group(2) for m in FENCE.finditer(README) if m.group(1) == "python" and "def get_study" in m.group(2))
  (tmp_path / "my_study.py").write_text(study)
  outputs = {}
  for command, expected in shown():
    result = CliRunner().invoke(cli.main, shlex.split(command)[1:])
    assert result.exit_code == 0, f"{command}\n{result.output}"
    outputs[command] = result.output
    for line in expected.splitlines():  # every line the README shows, but those it elides with …
      if "…" not in line and line.strip():
        assert _normal(line) in _normal(result.output), f"{command}: README shows {line!r}"
  assert len(outputs) >= 20
  fitted = json.loads((tmp_path / "chinchilla.json").read_text())["fit"]
  assert fitted["n_points"] == 6 and set(fitted["intervals"]) == {"A", "alpha", "B", "beta", "E"}
  table = pd.read_csv(tmp_path / "losses.csv")
  assert len(table) == 6 and (table["loss"] < 5.6).all()  # below a uniform byte guess, ln 259 ≈ 5.56
  assert {p.name for p in (tmp_path / "plots").iterdir()} >= {"fit.png", "fit.svg", "curves.png", "curves.svg"}
  accuracy = next(v for k, v in outputs.items() if "--columns line_end/acc" in k)
  assert "line_end/acc" in accuracy
  report = (tmp_path / "report.html").read_text()
  assert report.count("<svg") >= 3 and "chinchilla on the dense runs" in report
  from_python = next(
    m.group(2) for m in FENCE.finditer(README) if m.group(1) == "python" and "store.open" in m.group(2)
  )
  exec(compile(from_python, "README.md (From Python)", "exec"), {})  # the Python section, on the tour's store
  assert (tmp_path / "plots" / "fit_from_python.svg").exists()


def test_the_readme_performance_figures_are_those_of_the_committed_benchmark_report():
  report = json.loads((REPO / "docs" / "bench" / "all.json").read_text())
  assert {row["benchmark"] for row in report["figures"]} == set(suite.BENCHMARKS)
  assert suite.readme_table(report) in README
