"""Bad input stops before anything is written, with one line naming the field or file: meshes that do not
fit the model or the devices, bad fit CSVs, a --root a dry run must print on one line."""

import json
import os
import shlex

import jax
import pytest
from click.testing import CliRunner
from launch_helpers import tiny_base

from mixlaws import cli, config, registry, sweep, train

MOE3 = ["moe.expansion_rate=3", "moe.router=token_choice", "moe.capacity_factor=0"]


def _invoke(*args):
  return CliRunner().invoke(cli.main, [str(a) for a in args])


@pytest.mark.parametrize(
  "overrides, message",
  [
    (
      [*MOE3, "mesh.expert=4"],
      "error: mesh.expert: mesh.expert=4 does not divide 3, the expert dimension of stacks/0/units/blocks/0/ffn/"
      "experts/down (set by moe.expansion_rate × moe.granularity)",
    ),
    # The vocabulary is padded to 128 × the tensor axis, so the one head is what tensor=2 cannot split.
    (["mesh.tensor=2"], "error: mesh.tensor: mesh.tensor=2 does not divide 1, the heads dimension of "),
    (["mesh.fsdp=3"], "error: mesh.fsdp: mesh.fsdp=3 does not divide the 8 devices (mesh.data=-1 takes the rest)"),
    (["mesh.data=2", "mesh.expert=2"], "error: mesh.expert: the mesh axes multiply to 4 (mesh.data=2 × mesh.expert=2)"),
  ],
)
def test_a_bad_mesh_is_named_before_a_run_dir_is_written(tmp_path, overrides, message):
  path = tmp_path / "config.json"
  path.write_text(json.dumps(config.resolve(tiny_base(os.fspath(tmp_path / "data"))).to_dict()))
  result = _invoke("train", path, "--root", tmp_path / "runs", "--quiet", *(f"-o{o}" for o in overrides))
  assert result.exit_code == 2, result.output
  assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
  assert not (tmp_path / "runs" / "adhoc").exists()


def test_an_expert_axis_larger_than_the_devices_names_mesh_expert(tmp_path):
  cfg = config.resolve(tiny_base(os.fspath(tmp_path / "data"), *MOE3, "mesh.expert=3"))
  with pytest.raises(ValueError, match=r"^mesh\.expert: mesh\.expert=3 does not divide the 1 devices"):
    train.train(cfg, os.fspath(tmp_path / "run"), devices=jax.devices()[:1], progress=False)
  assert not (tmp_path / "run").exists()


def test_a_study_whose_mesh_cannot_split_a_run_is_refused_before_its_queue_is_written(tmp_path):
  bad = {"mesh.expert": 4, "moe.expansion_rate": 3, "moe.router": "token_choice", "moe.capacity_factor": 0.0}
  study = registry.Study("meshes", "bad mesh", tiny_base(""), [{}, bad])
  specs = registry.expand_study(study)
  with pytest.raises(ValueError, match=rf"^{specs[1].run_id}: mesh\.expert: mesh\.expert=4 does not divide 3, "):
    sweep.enqueue(specs, tmp_path)
  assert not (tmp_path / "meshes").exists()


CSV_HEADER = "params,tokens,loss\n1e6,2e7,3.1\n"


@pytest.mark.parametrize(
  "content, message",
  [
    (CSV_HEADER + "abc,2e7,3.0\n", "column 'params', row 2: 'abc' is not a number"),
    (CSV_HEADER + "-5,2e7,3.0\n", "column 'params', row 2: -5 is not positive"),
    (CSV_HEADER + "1e7,,3.0\n", "column 'tokens', row 2: is empty or NaN"),
    (CSV_HEADER + "1e7,nan,3.0\n", "column 'tokens', row 2: is empty or NaN"),
    (CSV_HEADER + "1e7,2e8,inf\n", "column 'loss', row 2: inf is not finite"),
    (CSV_HEADER + "1e7,2e8,-1\n", "column 'loss', row 2: -1 is not positive"),
    ("", "empty, no header row"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage", "not a text CSV (byte 0 is not UTF-8)"),
    ("params,toks,loss\n1e6,2e7,3.1\n", "no column 'tokens' for tokens"),
    ("params,tokens,loss\n", "no rows under the header"),
  ],
)
def test_a_bad_csv_names_the_file_the_column_and_the_row(tmp_path, content, message):
  path = tmp_path / "points.csv"
  path.write_bytes(content if isinstance(content, bytes) else content.encode())
  result = _invoke("fit", "--law", "chinchilla", "--csv", path)
  assert result.exit_code == 2, result.output
  assert result.stderr == f"error: {path}: {message}\n" or (
    message.startswith("no column") and result.stderr.startswith(f"error: {path}: {message}")
  )


def test_a_csv_column_mapped_under_another_name_is_named_as_the_file_names_it(tmp_path):
  path = tmp_path / "points.csv"
  path.write_text("N,D,val_loss\n1e6,2e7,3.1\n1e7,2e8,oops\n")
  result = _invoke("fit", "--law", "chinchilla", "--csv", path, "--map", "N=N,D=D,loss=val_loss")
  assert result.stderr == f"error: {path}: column 'val_loss', row 2: 'oops' is not a number\n"


def test_a_newline_in_root_stays_inside_the_dry_runs_comment(tmp_path):
  root = f"{tmp_path}/a\nrm -rf b"
  result = _invoke("run", "smoke", "--dry-run", "--root", root)
  assert result.exit_code == 0, result.output
  assert result.stdout.startswith(f"# queue: 16 runs under {tmp_path}/a\\nrm -rf b/smoke (not written")
  words = shlex.split(result.stdout, comments=True)  # what a shell would run, given the output
  assert words[0].endswith("python") and "rm" not in words
