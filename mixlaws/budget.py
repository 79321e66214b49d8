"""A run's budget: how many steps at which batch size, and how many tokens that is.

Batch-size ramp-up (Ludziejewski et al. 2025, PAPERS.md §2.6): `train.batch_rampup` lists
stages `SEQS:TOKENS`; a step uses a stage's batch while the tokens seen after that step stay
within the stage's threshold, then the next stage takes over, and finally `train.batch_size`.
With 128:5e8,256:1e9 at seq_len 512 this gives the paper's
tokens(s) = 512·(512 s − 128·min(s, 7629) − 256·min(s, 11443)).
"""

from __future__ import annotations

import dataclasses
import math

from mixlaws.config import Config, TrainConfig, parse_rampup


@dataclasses.dataclass(frozen=True)
class Segment:
  """A run of consecutive steps that share one batch size."""

  batch_size: int  # sequences per step
  steps: int  # steps in this segment
  start_step: int  # steps taken before it
  start_tokens: int  # tokens seen before it


def segments(train: TrainConfig, seq_len: int) -> tuple[Segment, ...]:
  """The batch-size segments of a whole run; the last one uses train.batch_size."""
  stages = list(parse_rampup(train.batch_rampup)) + [(train.batch_size, None)]
  out: list[Segment] = []
  step = tokens = 0
  for seqs, threshold in stages:
    per_step = seqs * seq_len
    if train.steps:
      room = train.steps - step
    else:
      room = max(math.ceil((train.tokens - tokens) / per_step), 0)
    if threshold is not None:
      room = min(room, max((threshold - tokens) // per_step, 0))
    if room > 0:
      out.append(Segment(seqs, room, step, tokens))
      step += room
      tokens += room * per_step
  return tuple(out)


def total_steps(cfg: Config) -> int:
  return sum(s.steps for s in segments(cfg.train, cfg.model.seq_len))


def total_tokens(cfg: Config) -> int:
  """Tokens the run trains on (a token budget rounds up to whole steps)."""
  return sum(s.steps * s.batch_size for s in segments(cfg.train, cfg.model.seq_len)) * cfg.model.seq_len


def batch_size_at(cfg: Config, step: int) -> int:
  """Sequences in the batch of step `step` (0-based)."""
  for seg in segments(cfg.train, cfg.model.seq_len):
    if step < seg.start_step + seg.steps:
      return seg.batch_size
  return cfg.train.batch_size


def tokens_after(cfg: Config, steps: int) -> int:
  """Tokens seen after `steps` steps."""
  seen = 0
  for seg in segments(cfg.train, cfg.model.seq_len):
    seen += min(max(steps - seg.start_step, 0), seg.steps) * seg.batch_size * cfg.model.seq_len
  return seen
