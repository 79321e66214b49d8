"""One run as 2 processes x 4 CPU devices (jax.distributed, gloo) equals 1 process x 8 devices."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from train_helpers import MOE, losses, tiny

from mixlaws import rundir, train


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one(data_dir, tmp_path_factory):
  tmp = tmp_path_factory.mktemp("runs")
  # the sharded MoE run of test_train: its programs are in the session's compilation cache
  cfg = tiny(data_dir, "mesh.data=2", "mesh.fsdp=2", "mesh.expert=2", *MOE)
  assert train.train(cfg, str(tmp / "one"), progress=False) == "done"
  rundir.RunDir(tmp / "two").write_config({"study": "t", "run_id": "two", "config": cfg.to_dict(), "counts": {}})
  port = _free_port()
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
  procs = [
    subprocess.Popen(
      [
        sys.executable,
        "-m",
        "mixlaws",
        "train",
        str(tmp / "two"),
        "--quiet",
        "--coordinator",
        f"localhost:{port}",
        "--num-processes",
        "2",
        "--process-id",
        str(i),
      ],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )  # fmt: skip
    for i in range(2)
  ]
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outputs
  np.testing.assert_allclose(losses(tmp / "two"), losses(tmp / "one"), atol=1e-5, rtol=0)
