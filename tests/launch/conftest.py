"""A data dir shared by the launch tests, prepared before any worker starts (so none races to prepare it)."""

import pytest
from launch_helpers import tiny_base

from mixlaws import config, data


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """Prepared once, before any worker starts, so workers never race to prepare it."""
  path = str(tmp_path_factory.mktemp("data"))
  cfg = config.resolve(tiny_base(path))
  data.prepare(cfg.data, data.tokenizer(cfg.data))
  return path
