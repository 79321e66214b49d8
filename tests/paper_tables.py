"""The papers' published tables (copied into tests/data as CSV), read for use as test oracles."""

from __future__ import annotations

import csv
import pathlib

DATA = pathlib.Path(__file__).parent / "oracles"


def read(name: str) -> list[dict[str, str]]:
  with open(DATA / name) as f:
    return list(csv.DictReader(line for line in f if not line.startswith("#")))


def parse_size(text: str) -> float:
  """'5.0B' → 5.0e9, '321M' → 3.21e8, '0.5B' → 5e8."""
  scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[text[-1]]
  return float(text[:-1]) * scale


def printed_precision(text: str) -> float:
  """Half a unit in the last printed digit of a size such as '5.0B' or '321M'."""
  mantissa = text[:-1]
  decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
  return 0.5 * 10**-decimals * parse_size("1" + text[-1])
