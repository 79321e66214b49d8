"""The package builds as a wheel that installs into a clean virtual environment, and works from anywhere.

The wheel is built offline from a copy of the tracked files and installed without its dependencies;
the fresh environment borrows them from this one through a path file (which does not bring this
environment's editable install of mixlaws along), so what is tested is the wheel's own content:
the package, `experiments/` and `launch/` mapped into it, the bootstrap script and the entry point.
Resolving the dependencies themselves is what `make demo` and `make test` do on a fresh machine.
"""

import os
import shutil
import site
import subprocess
import sys
import venv

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_runs_from_an_unrelated_directory(tmp_path):
  source = tmp_path / "source"
  tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
  for name in filter(None, tracked.decode().split("\0")):
    if os.path.isfile(os.path.join(REPO, name)):
      (source / name).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(os.path.join(REPO, name), source / name)
  wheels = tmp_path / "wheels"
  pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
  subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True)
  (wheel,) = wheels.iterdir()
  assert wheel.name.startswith("mixlaws-") and wheel.suffix == ".whl"

  env_dir = tmp_path / "clean"
  venv.create(env_dir, with_pip=False)
  python = env_dir / "bin" / "python"
  purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
  with open(os.path.join(purelib, "borrowed-dependencies.pth"), "w") as f:
    f.write("\n".join(site.getsitepackages()) + "\n")
  subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True)

  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ""}

  def mixlaws(*args):
    result = subprocess.run([str(env_dir / "bin" / "mixlaws"), *args], cwd=elsewhere, env=env, capture_output=True,
                            text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout

  where = subprocess.run([str(python), "-c", "import mixlaws, mixlaws.launch; print(mixlaws.__file__)"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout  # fmt: skip
  assert where.startswith(purelib) and not where.startswith(REPO)  # the wheel's copy, not the checkout
  assert "studies" in mixlaws("--help") and "plan" in mixlaws("--help")
  listed = mixlaws("studies")
  assert all(name in listed for name in ("krajewski2024", "ludziejewski2025", "smoke", "wang2024"))
  assert "168 runs, 2.08e+21 training FLOPs" in mixlaws("plan", "krajewski2024")
  assert os.path.isfile(os.path.join(purelib, "mixlaws", "launch", "bootstrap.sh"))
