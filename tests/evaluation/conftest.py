"""A tiny run trained once per test session; tests that write into a run dir get their own copy."""

import shutil
import types

import pytest
from train_helpers import tiny

from mixlaws import train

STUDY = "evalsmoke"
STEPS = 150  # ~150k tokens: enough for line_end (measured 0.33–0.37 at 100–150 steps; chance 0.25)
CHECKPOINT_EVERY = 75  # two checkpoints, so tests can pick a step


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
  """(cfg, run_dir, data_dir, study) of a 2-layer d_model=32 byte model trained on 40 standard-library files.

  Its parameters are sharded over fsdp = 4, so evaluation restores them sharded as well.
  """
  data_dir = str(tmp_path_factory.mktemp("evaldata"))
  cfg = tiny(data_dir, f"train.steps={STEPS}", "model.seq_len=64", "train.batch_size=16", "train.lr=1e-2",
             "train.schedule=constant", "train.eval_tokens=512", f"checkpoint.every_steps={CHECKPOINT_EVERY}",
             "mesh.data=2", "mesh.fsdp=4")  # fmt: skip
  run_dir = tmp_path_factory.mktemp("evalruns") / STUDY / f"{STUDY}-tiny"
  assert train.train(cfg, str(run_dir), progress=False) == "done"
  return types.SimpleNamespace(cfg=cfg, run_dir=run_dir, data_dir=data_dir, study=STUDY)


@pytest.fixture
def run_copy(trained, tmp_path):
  """A fresh copy of the trained run at tmp_path/<study>/<run id>, for tests that write into it."""
  dest = tmp_path / STUDY / trained.run_dir.name
  shutil.copytree(trained.run_dir, dest)
  return dest
