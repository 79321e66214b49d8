"""A data dir shared by the training tests of one test process (prepared once)."""

import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("data"))
