"""Names are data: injection strings in study, run and root names reach every process as single inert arguments."""

import json
import os
import shlex
import subprocess
import sys

import pytest
from click.testing import CliRunner
from launch_helpers import tiny_study
from mixlaws.launch import common, local, local_multihost, tpu_vm, xpk

from mixlaws import cli, registry, rundir, sweep

STUDY = "x;touch PWNED1;$(touch PWNED2)`touch PWNED3`|touch PWNED4&&'\"${IFS}"
ROOT_TAIL = "r $(touch PWNED5);touch PWNED6"


@pytest.fixture
def fake_mixlaws(tmp_path):
  """A `mixlaws` on PATH that writes down the arguments it was given."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  path = bin_dir / "mixlaws"
  path.write_text(f"#!{sys.executable}\nimport json, sys\nopen({str(tmp_path / 'argv.json')!r}, 'w').write("
                  "json.dumps(sys.argv[1:]))\n")  # fmt: skip
  path.chmod(0o755)
  return bin_dir


def _run_remotely(line, tmp_path, bin_dir):
  """Runs a remote --command line the way the host's shell would, in an empty working directory."""
  work = tmp_path / "work"
  work.mkdir(exist_ok=True)
  env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp_path), "HOME": str(tmp_path)}
  out = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, check=False)
  assert out.returncode == 0, out.stderr
  assert not [p for p in (work, tmp_path) for f in os.listdir(p) if f.startswith("PWNED")]
  return json.loads((tmp_path / "argv.json").read_text())


def test_remote_worker_commands_are_inert(tmp_path, fake_mixlaws):
  root = f"gs://bucket/{ROOT_TAIL}"
  expected = ["worker", "--root", root, "--quiet", "--stale-after", "300", "--", STUDY]
  vm = tpu_vm.plan(STUDY, root, tpu_vm.Options("v5p-8", project="p", zone="z", package=""), common.DEFAULT_WORKER,
                   dry_run=True)  # fmt: skip
  assert _run_remotely(vm.worker_command, tmp_path, fake_mixlaws) == expected
  gke = xpk.plan(STUDY, root, xpk.Options("c", "v5p-8", project="p", zone="z", package=""), common.DEFAULT_WORKER,
                 dry_run=True)  # fmt: skip
  assert _run_remotely(gke.worker_command, tmp_path, fake_mixlaws) == expected
  # The slice names carry none of it.
  assert all(set(n) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") for n in vm.names + gke.names)


def test_local_commands_pass_the_name_as_one_argument():
  for command in [*local.commands(STUDY, "r; rm -rf /"), *local_multihost.commands(STUDY, "r; rm -rf /")]:
    assert command.argv[-2:] == ("--", STUDY)
    assert command.argv[command.argv.index("--root") + 1] == "r; rm -rf /"
    assert shlex.split(command.shell())[-len(command.argv) :] == list(command.argv)


def test_names_are_single_directories(tmp_path):
  specs = registry.expand_study(tiny_study("", STUDY, [{}]))
  sweep.enqueue(specs, tmp_path)
  assert os.listdir(tmp_path) == [STUDY]  # a literal directory name, nothing run
  assert rundir.RunDir(sweep.study_dir(tmp_path, STUDY) / specs[0].run_id).read_status()["state"] == "pending"
  for bad in ("; rm -rf /", "..", ".hidden", ""):
    with pytest.raises(ValueError, match="^study: .* cannot name a directory"):
      sweep.study_dir(tmp_path, bad)


def test_a_study_named_like_an_option_is_a_name(tmp_path):
  result = CliRunner().invoke(cli.main, ["worker", "--root", str(tmp_path), "--quiet", "--", "--help"])
  assert result.exit_code == 0 and "trained 0 run(s)" in result.output, result.output
