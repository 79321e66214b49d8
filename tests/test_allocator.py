"""malloc set up for XLA:CPU: which environments get the tunables, and the re-execution itself."""

import os
import subprocess
import sys

import pytest

from mixlaws import allocator

pytestmark = pytest.mark.skipif(not allocator._has_glibc(), reason="glibc tunables need glibc")


def test_tunables_are_added_to_an_environment_without_malloc_settings():
  env = allocator.tuned_environ({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"})
  assert env["PATH"] == "/bin"
  assert env["GLIBC_TUNABLES"].split(":") == ["glibc.cpu.hwcaps=-AVX512F", *allocator.TUNABLES]
  assert allocator.tuned_environ({})["GLIBC_TUNABLES"] == ":".join(allocator.TUNABLES)


@pytest.mark.parametrize(
  "environ",
  [
    {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"},  # the user's own malloc settings win
    {"MIXLAWS_MALLOC": "system"},  # the documented way out
    {"GLIBC_TUNABLES": ":".join(allocator.TUNABLES)},  # already re-executed: no loop
  ],
)
def test_environments_that_keep_their_malloc(environ):
  assert allocator.tuned_environ(environ) is None


def test_describe_names_the_setting():
  assert allocator.describe({"GLIBC_TUNABLES": ":".join(allocator.TUNABLES)}).startswith("glibc tuned")
  assert (
    allocator.describe({"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"})
    == "glibc with GLIBC_TUNABLES=glibc.malloc.arena_max=4"
  )
  assert allocator.describe({}) == "glibc defaults"


def test_the_process_reexecutes_itself_once_with_the_tunables_and_keeps_its_pid():
  code = (
    "import os\n"
    "print(os.getpid(), repr(os.environ.get('GLIBC_TUNABLES')), flush=True)\n"
    "from mixlaws import allocator\n"
    "allocator.reexec_with_tuned_malloc()\n"
  )
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "MIXLAWS_MALLOC")}
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
  assert out.splitlines() == [f"{out.split()[0]} None", f"{out.split()[0]} {':'.join(allocator.TUNABLES)!r}"]
