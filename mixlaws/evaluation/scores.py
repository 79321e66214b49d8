"""Task metrics from per-choice log-likelihoods and per-sample checker verdicts (pure numpy, no model)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def multiple_choice(
  loglik: Sequence[Sequence[float]],
  n_tokens: Sequence[Sequence[int]],
  n_bytes: Sequence[Sequence[int]],
  answers: Sequence[int],
) -> dict[str, float]:
  """Accuracy by summed log-likelihood, per-token and per-byte normalised, and bits-per-byte.

  Args:
    loglik: natural-log likelihood of each example's continuations, one list per example.
    n_tokens: tokens of each continuation.
    n_bytes: UTF-8 bytes of each continuation.
    answers: index of each example's correct continuation.

  `acc_norm_byte` is what lm-evaluation-harness and the downstream-metrics data call `acc_norm`
  (Gao et al. 2021; Krajewski et al. 2025, PAPERS.md §6.2); `bpb` is the correct continuation's
  −log₂ likelihood per byte, averaged over examples; `acc_stderr` is the sample standard error;
  `chance` the mean of 1 / choices.
  """
  if not len(answers):
    raise ValueError("multiple_choice: no examples to score")
  hits = {"acc": [], "acc_norm_token": [], "acc_norm_byte": []}
  bpb = []
  for ll, tokens, nbytes, answer in zip(loglik, n_tokens, n_bytes, answers, strict=True):
    ll = np.asarray(ll, np.float64)
    if not 0 <= answer < len(ll):
      raise ValueError(f"answer: {answer} is not the index of one of {len(ll)} choices")
    # np.argmax takes the first of tied choices, so a tie never favours the answer by position.
    hits["acc"].append(np.argmax(ll) == answer)
    hits["acc_norm_token"].append(np.argmax(ll / np.maximum(np.asarray(tokens), 1)) == answer)
    hits["acc_norm_byte"].append(np.argmax(ll / np.maximum(np.asarray(nbytes), 1)) == answer)
    bpb.append(-ll[answer] / (math.log(2) * max(nbytes[answer], 1)))
  out = {name: float(np.mean(h)) for name, h in hits.items()}
  n = len(answers)
  out["acc_stderr"] = math.sqrt(out["acc"] * (1 - out["acc"]) / (n - 1)) if n > 1 else float("nan")
  out["bpb"] = float(np.mean(bpb))
  # The accuracy of guessing, for the chance correction of accuracy laws (PAPERS.md §6.1).
  out["chance"] = float(np.mean([1 / len(ll) for ll in loglik]))
  return out


def pass_at_k(n: int, c: int, k: int) -> float:
  """Unbiased pass@k from n samples of which c pass: 1 − C(n−c, k) / C(n, k) (Chen et al. 2021, Eq. 1)."""
  if not 0 <= c <= n or not 1 <= k <= n:
    raise ValueError(f"pass@k: need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
  if n - c < k:
    return 1.0
  # The product form of Chen et al. 2021 (Fig. 3) avoids the huge binomials of large n.
  return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def ks(n: int) -> list[int]:
  """The k reported for n samples: powers of two up to n, and n itself (as in the 1…128 of PAPERS.md §6.2)."""
  return sorted({2**i for i in range(n.bit_length()) if 2**i <= n} | {n})


def generative(passed: Sequence[Sequence[bool]]) -> dict[str, float]:
  """pass@k for each k of `ks(n)`, averaged over problems; each problem has the same n samples."""
  if not len(passed):
    raise ValueError("generative: no problems to score")
  n = len(passed[0])
  if n == 0 or any(len(p) != n for p in passed):
    raise ValueError("generative: every problem needs the same, positive number of samples")
  correct = [int(sum(p)) for p in passed]
  return {f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for c in correct])) for k in ks(n)}
