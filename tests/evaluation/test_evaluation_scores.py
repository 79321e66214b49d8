"""Metrics against hand computations: pass@k's closed form, accuracies, length normalisation, bits-per-byte."""

import math

import pytest

from mixlaws.evaluation import scores


def test_pass_at_k_equals_the_binomial_closed_form():
  for n in range(1, 11):
    for c in range(n + 1):
      for k in range(1, n + 1):
        expected = 1 - math.comb(n - c, k) / math.comb(n, k)  # Chen et al. 2021, Eq. 1
        assert scores.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)


def test_pass_at_k_rejects_impossible_counts():
  for n, c, k in ((4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)):
    with pytest.raises(ValueError, match="pass@k"):
      scores.pass_at_k(n, c, k)


def test_generative_averages_pass_at_k_over_problems():
  # Problem 1: 1 of 4 samples passes; problem 2: 2 of 4.
  out = scores.generative([[True, False, False, False], [False, True, True, False]])
  assert set(out) == {"pass@1", "pass@2", "pass@4"}
  assert out["pass@1"] == pytest.approx((1 / 4 + 2 / 4) / 2)
  assert out["pass@2"] == pytest.approx(((1 - 3 / 6) + (1 - 1 / 6)) / 2)  # 1 − C(n−c,2)/C(4,2)
  assert out["pass@4"] == pytest.approx(1.0)
  assert scores.ks(8) == [1, 2, 4, 8] and scores.ks(6) == [1, 2, 4, 6] and scores.ks(1) == [1]


def test_multiple_choice_by_hand():
  # Example 1: the raw sum favours the 1-token choice 2; per token and per byte favour the answer 1.
  # Example 2: every rule picks the answer 0.
  # Example 3: per token favours 0 (−2 vs −4), per byte favours the answer 1 (−1 vs −0.5).
  loglik = [[-10.0, -12.0, -3.0], [-4.0, -6.0], [-6.0, -8.0]]
  tokens = [[5, 8, 1], [2, 2], [3, 2]]
  nbytes = [[10, 16, 1], [4, 3], [6, 16]]
  answers = [1, 0, 1]
  out = scores.multiple_choice(loglik, tokens, nbytes, answers)
  assert out["acc"] == pytest.approx(1 / 3)
  assert out["acc_norm_token"] == pytest.approx(2 / 3)
  assert out["acc_norm_byte"] == pytest.approx(1.0)
  # Bits per byte of the correct choices: 12/16, 4/4 and 8/16 nats per byte, over ln 2.
  assert out["bpb"] == pytest.approx((12 / 16 + 4 / 4 + 8 / 16) / 3 / math.log(2))
  assert out["acc_stderr"] == pytest.approx(math.sqrt((1 / 3) * (2 / 3) / 2))
  assert out["chance"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)


def test_multiple_choice_rejects_an_answer_outside_the_choices():
  with pytest.raises(ValueError, match="answer"):
    scores.multiple_choice([[-1.0, -2.0]], [[1, 1]], [[1, 1]], [2])
