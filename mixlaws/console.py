"""Terminal output: rich tables and human-readable numbers."""

from __future__ import annotations

import sys

import rich.console
import rich.table

# Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
console = rich.console.Console(width=None if sys.stdout.isatty() else 200)


def human(value: float, unit: str = "") -> str:
  """3 significant figures with a K/M/B/T suffix: 321030144 → 321M."""
  for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
    if abs(value) >= scale:
      return f"{value / scale:#.4g}{suffix}{unit}"
  return f"{value:#.4g}{unit}"


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
  table = rich.table.Table(title=title, title_justify="left")
  for i, name in enumerate(columns):
    table.add_column(name, justify="left" if i == 0 else "right")
  for row in rows:
    table.add_row(*row)
  console.print(table)
