"""`mixlaws bench data`, pipeline half: cold preparation on a fresh data dir and the pipeline rate.

The training half compiles a model (tens of seconds on a busy CPU), so it is left to the command.
"""

import shutil

from mixlaws.bench import data as bench_data


def test_cold_preparation_and_pipeline_rate(make_cfg, tmp_path):
  cfg = make_cfg()
  cold, seconds, tmp = bench_data.prepare_cold(cfg, str(tmp_path))
  try:
    assert cold.data.data_dir == tmp != cfg.data.data_dir and tmp.startswith(str(tmp_path))
    assert (tmp_path / tmp).joinpath("mixlaws_tokens").is_dir()  # prepared there, not in the shared dir
    assert seconds["prepare_s"] > 0 and seconds["reopen_s"] > 0
    assert bench_data.pipeline_tokens_per_s(cold, batch_size=2, batches=5, repeats=1) > 0
  finally:
    shutil.rmtree(tmp)
