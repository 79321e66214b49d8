"""`mixlaws bench collect` runs end to end on a tiny study and reports every case."""

from mixlaws.bench import collect as bench_collect


def test_bench_collect_reports_every_case(tmp_path):
  report = bench_collect.run(runs=3, steps=30, chunk_steps=10, repeats=1, work_dir=str(tmp_path))
  assert report["workload"]["values"] == 3 * 30 * 6 and report["workload"]["chunk_files"] == 9
  cases = {row["case"]: row for row in report["results"]}
  assert len(cases) == 4 and all(row["seconds"] > 0 for row in cases.values())
  assert cases["first collect"]["target_s"] == 30.0 and cases["collect with nothing new"]["target_s"] == 2.0
  assert list(tmp_path.iterdir()) == []  # the synthetic study is removed afterwards
