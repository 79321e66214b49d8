"""A data dir shared by the launch tests, prepared before any worker starts (so none races to prepare it)."""

import os

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


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory):
  """One persistent compilation cache for every worker process of the session (runs share programs)."""
  values = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax_cache")),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}  # fmt: skip
  saved = {k: os.environ.get(k) for k in values}
  os.environ.update(values)
  yield
  for k, v in saved.items():
    if v is None:
      os.environ.pop(k)
    else:
      os.environ[k] = v
