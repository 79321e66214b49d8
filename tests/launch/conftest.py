"""A data dir shared by the launch tests, prepared before any worker starts (so none races to prepare it)."""

import pytest
from launch_helpers import prepared_data_dir


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return prepared_data_dir(tmp_path_factory)
