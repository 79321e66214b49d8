"""The embedded default tasks, built from the validation split of the local corpus (no download).

`line_end`: choose the true last characters of a line among four equally long line endings of the
same file; local syntax and identifiers decide it, so smoke-sized models already beat chance.
`next_line`: choose the true next line among four lines of the same file; only the context tells
them apart, which takes a model that reads the lines above (smoke-sized models stay near chance).
`close_brackets` (generative): complete a line cut inside its brackets; a completion passes when
the line's brackets then balance.
All three read only held-out documents, so a run trained on the corpus never saw them: the split is
by a hash of each document's id (`data.sources.split_documents`).
"""

from __future__ import annotations

import dataclasses
import io
import tokenize

import numpy as np

from mixlaws.config import DataConfig
from mixlaws.data import sources
from mixlaws.evaluation.tasks import Choices, Problem, Task

MC_EXAMPLES = 500  # default examples of line_end and next_line; chance 1/4 gives a standard error near 0.02
CLOSE_BRACKETS_PROBLEMS = 200  # default problems, each sampled --samples times
N_CHOICES = 4
CONTEXT_LINES = 16  # lines of the file before the line to choose or complete
MIN_LINE, MAX_LINE = 6, 100  # characters of a stripped candidate line: no trivial lines, no huge ones
MIN_END, MAX_END = 4, 16  # line_end: characters in each choice (before the newline)
MAX_REMAINDER = 12  # close_brackets: characters left to complete
MAX_NEW_TOKENS = 24  # close_brackets: room for the remainder, a newline and some slack at one byte per token
_PAIRS = {"(": ")", "[": "]", "{": "}"}
TASKS = ("line_end", "next_line", "close_brackets")


def corpus(data: DataConfig) -> DataConfig:
  """The corpus to draw from: the run's own local corpus, else the standard library."""
  if data.source in ("stdlib", "files"):
    return dataclasses.replace(data, max_documents=0)  # max_documents trims, never changes, the held-out set
  return DataConfig(source="stdlib")


def validation_files(data: DataConfig) -> list[list[str]]:
  """The lines of each held-out document, in document-id order."""
  data = corpus(data)
  held_out = sources.split_documents(data, sources.corpus_files(data))["validation"]
  return [text.splitlines() for _, text in sources.read_documents(held_out, data.text_field)]


def _candidate(line: str) -> bool:
  return MIN_LINE <= len(line.strip()) <= MAX_LINE


def _context(lines: list[str], j: int) -> str:
  return "\n".join(lines[max(0, j - CONTEXT_LINES) : j]) + "\n"


def _spots(data: DataConfig, limit: int, rng: np.random.Generator) -> list[tuple[list[str], int, list[int]]]:
  """(file lines, line index, the file's candidate line indexes) for `limit` random candidate lines."""
  spots = []
  for lines in validation_files(data):
    candidates = [j for j in range(1, len(lines)) if _candidate(lines[j])]
    if len(candidates) >= N_CHOICES:
      spots += [(lines, j, candidates) for j in candidates]
  if not spots:
    raise ValueError("embedded tasks: the held-out documents hold no file with four candidate lines")
  chosen = np.sort(rng.choice(len(spots), size=min(limit or MC_EXAMPLES, len(spots)), replace=False))
  return [spots[i] for i in chosen]


def _choices(context: str, true: str, others: list[str], rng: np.random.Generator) -> Choices | None:
  """The true choice and three distinct others, at a random position; None when `others` has too few.

  Others are drawn by position (a line that occurs twice is twice as likely), as the true one is, so
  all four come from one distribution and a model blind to the context is at chance.
  """
  picked: list[str] = []
  for i in rng.permutation(len(others)):
    if others[i] != true and others[i] not in picked:
      picked.append(others[i])
      if len(picked) == N_CHOICES - 1:
        break
  else:
    return None
  answer = int(rng.integers(N_CHOICES))
  choices = picked[:answer] + [true] + picked[answer:]
  return Choices((context,) * N_CHOICES, tuple(c + "\n" for c in choices), answer)


def line_end(data: DataConfig, limit: int = 0, seed: int = 0) -> Task:
  """Context: the lines above and the start of a line; choices: its last n characters and those of 3 other lines.

  All four choices have the same n characters, so accuracy by summed log-likelihood needs no length
  normalisation, and a model that ignores the context is at chance.
  """
  rng = np.random.default_rng(seed)
  examples = []
  for lines, j, candidates in _spots(data, limit, rng):
    n = int(rng.integers(MIN_END, min(MAX_END, len(lines[j].strip()) - 1) + 1))
    others = [lines[k][-n:] for k in candidates if k != j and len(lines[k].strip()) > n]
    example = _choices(_context(lines, j) + lines[j][:-n], lines[j][-n:], others, rng)
    if example is not None:
      examples.append(example)
  return Task("line_end", tuple(examples))


def next_line(data: DataConfig, limit: int = 0, seed: int = 0) -> Task:
  """Context: up to CONTEXT_LINES lines; choices: the true next line and three other lines of the file.

  Distractors are drawn by position, as the true line is, so without the context all four are alike.
  """
  rng = np.random.default_rng(seed)
  examples = []
  for lines, j, candidates in _spots(data, limit, rng):
    others = [lines[k] for k in candidates if lines[k].strip() != lines[j].strip()]  # not the same line re-indented
    example = _choices(_context(lines, j), lines[j], others, rng)
    if example is not None:
      examples.append(example)
  return Task("next_line", tuple(examples))


def brackets_balanced(line: str) -> bool:
  """Whether the brackets of a line of Python balance, outside strings and comments (by Python's tokenizer)."""
  stack = []
  try:
    for token in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
      if token.type != tokenize.OP:
        continue
      if token.string in _PAIRS:
        stack.append(_PAIRS[token.string])
      elif token.string in _PAIRS.values() and (not stack or stack.pop() != token.string):
        return False
  except (tokenize.TokenError, SyntaxError):  # an open bracket at the end of input, a bad character
    return False
  return not stack


def _depths(line: str) -> list[int] | None:
  """Bracket depth before each character, or None when the brackets do not balance.

  A character scan suffices here: candidate lines hold no strings or comments.
  """
  stack: list[str] = []
  out = []
  for ch in line:
    out.append(len(stack))
    if ch in _PAIRS:
      stack.append(_PAIRS[ch])
    elif ch in _PAIRS.values() and (not stack or stack.pop() != ch):
      return None
  return None if stack else out


def check_close_brackets(problem: Problem, completion: str) -> bool:
  """The completion ends the line, and the cut line with the completion's first line has balanced brackets."""
  if "\n" not in completion:  # ran out of tokens before ending the line
    return False
  return brackets_balanced(problem.prompt.rsplit("\n", 1)[-1] + completion.split("\n", 1)[0])


def close_brackets(data: DataConfig, limit: int = 0, seed: int = 0) -> Task:
  """Lines with balanced brackets and no strings or comments, cut where a bracket is still open."""
  rng = np.random.default_rng(seed)
  spots = []  # (file, line index, cut positions)
  for lines in validation_files(data):
    for j in range(1, len(lines)):
      line = lines[j]
      if not _candidate(line) or ")" not in line and "]" not in line and "}" not in line:
        continue
      depths = None if any(ch in line for ch in "'\"#\\") else _depths(line)
      if depths is None:
        continue
      cuts = [p for p, d in enumerate(depths) if d > 0 and 0 < len(line) - p <= MAX_REMAINDER]
      if cuts:
        spots.append((lines, j, cuts))
  if not spots:
    raise ValueError("close_brackets: the held-out documents hold no line with brackets to close")
  chosen = np.sort(rng.choice(len(spots), size=min(limit or CLOSE_BRACKETS_PROBLEMS, len(spots)), replace=False))
  problems = []
  for s in chosen:
    lines, j, cuts = spots[s]
    cut = cuts[int(rng.integers(len(cuts)))]
    problems.append(Problem(_context(lines, j) + lines[j][:cut], lines[j][cut:] + "\n"))
  return Task("close_brackets", tuple(problems), check=check_close_brackets, max_new_tokens=MAX_NEW_TOKENS)


def build(name: str, data: DataConfig, limit: int = 0, seed: int = 0) -> Task:
  builders = {"line_end": line_end, "next_line": next_line, "close_brackets": close_brackets}
  if name in builders:
    return builders[name](data, limit, seed)
  raise ValueError(f"--tasks: {name!r} is not an embedded task ({', '.join(TASKS)})")
