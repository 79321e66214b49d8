"""One tiny study trained once per session; each test gets its own copy of the run root.

<root>/rel/<trained run>   4 steps, checkpoints at 2 and 4, done (attempt 0)
<root>/rel/<pending run>   queued, never trained
"""

import os
import shutil
import types

import pytest
from launch_helpers import prepared_data_dir, tiny_base

from mixlaws import registry, rundir, sweep, train

STUDY = "rel"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return prepared_data_dir(tmp_path_factory)


def _study(data_dir):
  base = tiny_base(data_dir, "checkpoint.every_steps=2")
  return registry.Study(STUDY, "reliability faults", base, [{}, {"train.lr": 1e-3}])


@pytest.fixture(scope="session")
def template(tmp_path_factory, data_dir):
  root = tmp_path_factory.mktemp("template")
  specs = registry.expand_study(_study(data_dir))
  sweep.enqueue(specs, root)
  trained = rundir.RunDir(sweep.study_dir(root, STUDY) / specs[0].run_id)
  assert train.train(specs[0].config, os.fspath(trained.path), attempt=0, progress=False) == "done"
  return root, specs


@pytest.fixture
def study(tmp_path, template):
  """A fresh copy of the trained study: root, specs, the trained and the pending RunDir."""
  root = tmp_path / "runs"
  shutil.copytree(template[0], root)
  specs = template[1]
  dirs = [rundir.RunDir(sweep.study_dir(root, STUDY) / s.run_id) for s in specs]
  return types.SimpleNamespace(root=root, specs=specs, trained=dirs[0], pending=dirs[1], cfg=specs[0].config)
