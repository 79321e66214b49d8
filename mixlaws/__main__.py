"""The `mixlaws` command (also `python -m mixlaws`): malloc set up for XLA:CPU, then the CLI.

Only `mixlaws.allocator` is imported before the re-execution, so the first start costs almost nothing.
"""

from mixlaws import allocator


def run() -> None:
  allocator.reexec_with_tuned_malloc()
  from mixlaws import cli

  cli.main()


if __name__ == "__main__":
  run()
