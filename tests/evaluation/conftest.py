"""A tiny run trained once per test session; tests that write into a run dir get their own copy."""

import os
import shutil
import types

import pytest
from train_helpers import tiny

from mixlaws import rundir, train
from mixlaws.data import locks

STUDY = "evalsmoke"
STEPS = 300  # 300k tokens: line_end accuracy 0.38–0.45 over three task seeds (chance 0.25); compiling costs more
CHECKPOINT_EVERY = 150  # two checkpoints, so tests can pick a step


def _shared_dir(tmp_path_factory):
  """A directory all xdist workers of this test run share (they train the run once), else a private one."""
  run_uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
  if run_uid is None:
    return tmp_path_factory.mktemp("evaluation")
  shared = tmp_path_factory.getbasetemp().parent / f"evaluation-{run_uid}"
  shared.mkdir(exist_ok=True)
  return shared


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
  """(cfg, run_dir, data_dir, study) of a 2-layer d_model=32 byte model trained on 40 standard-library files.

  Its parameters are sharded over fsdp = 4, so evaluation restores them sharded as well.
  """
  shared = _shared_dir(tmp_path_factory)
  data_dir = str(shared / "data")
  cfg = tiny(data_dir, f"train.steps={STEPS}", "model.seq_len=64", "train.batch_size=16", "train.lr=1e-2",
             "train.schedule=constant", "train.eval_tokens=512", f"checkpoint.every_steps={CHECKPOINT_EVERY}",
             "mesh.data=2", "mesh.fsdp=4")  # fmt: skip
  run_dir = shared / "runs" / STUDY / f"{STUDY}-tiny"
  with locks.locked(str(shared), "train"):
    status = rundir.RunDir(run_dir).read_status()
    if status is None or status["state"] != "done":
      assert train.train(cfg, str(run_dir), progress=False) == "done"
  return types.SimpleNamespace(cfg=cfg, run_dir=run_dir, data_dir=data_dir, study=STUDY)


@pytest.fixture
def run_copy(trained, tmp_path):
  """A fresh copy of the trained run at tmp_path/<study>/<run id>, for tests that write into it."""
  dest = tmp_path / STUDY / trained.run_dir.name
  shutil.copytree(trained.run_dir, dest)
  return dest
