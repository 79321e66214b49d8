"""Batched scoring and sampling against a per-row hand computation; a trained model against an untrained one."""

import jax
import numpy as np
import pytest
from flax import nnx
from train_helpers import tiny

from mixlaws import optim, sharding, train
from mixlaws.evaluation import engine, runner
from mixlaws.rundir import RunDir

HAND_ROWS = 16  # the reference runs every row in one batch of this many, padded to seq_len


@pytest.fixture(scope="module")
def model(trained):
  return engine.load(RunDir(trained.run_dir), trained.cfg)


@pytest.fixture(scope="module")
def logp_of(model):
  """Reference: log-softmax at every position of each row, from one plain forward (no buckets, no sorting)."""
  forward = jax.jit(lambda params, state, tokens_bt: nnx.merge(model.gdef, params, state)(tokens_bt, train=False)[0])

  def logp(rows):
    tokens_bt = np.full((HAND_ROWS, model.cfg.model.seq_len), model.tokenizer.pad_id, np.int32)
    for i, row in enumerate(rows):
      tokens_bt[i, : len(row)] = row
    logits_btv = forward(model.params, model.model_state, tokens_bt)
    return np.asarray(jax.nn.log_softmax(logits_btv, axis=-1))[: len(rows)]

  return logp


def test_loglik_is_the_sum_of_the_continuation_token_log_probs(model, logp_of):
  rng = np.random.default_rng(0)
  lengths = [(3, 1), (10, 4), (1, 7), (70, 5), (2, 80), (20, 12), (5, 5), (0, 3), (12, 2)]  # some exceed seq_len
  rows = [(rng.integers(0, 256, c).tolist(), rng.integers(0, 256, n).tolist()) for c, n in lengths]
  loglik, scored = model.loglik(rows, batch_size=8)  # 9 rows: two batches of 8, the second padded
  seq_len, eos = model.cfg.model.seq_len, model.tokenizer.eos_id
  fulls = [([eos] + ctx + cont)[-(seq_len + 1) :] for ctx, cont in rows]  # contexts are cut from the left
  logp_btv = logp_of([full[:-1] for full in fulls])
  for (_, cont), full, logp_tv, got, n_scored in zip(rows, fulls, logp_btv, loglik, scored):
    n = min(len(cont), len(full) - 1)
    by_hand = sum(logp_tv[j, full[j + 1]] for j in range(len(full) - 1 - n, len(full) - 1))
    assert n_scored == n
    np.testing.assert_allclose(got, by_hand, rtol=1e-5, atol=1e-4)


def test_greedy_sampling_follows_the_argmax(model, logp_of):
  prompts = [list(b"def f(x):\n    return"), list(b"import o"), list(range(40, 100))]  # the last one is cut
  draws = model.sample(prompts, n=2, max_new=5, temperature=0.0, seed=0, batch_size=8)
  keep = model.cfg.model.seq_len - 5
  rows = [([model.tokenizer.eos_id] + p)[-keep:] for p in prompts]
  for _ in range(5):
    logp_btv = logp_of(rows)
    rows = [row + [int(np.argmax(logp_tv[len(row) - 1]))] for row, logp_tv in zip(rows, logp_btv)]
  assert draws == [[row[-5:]] * 2 for row in rows]


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampling_draws_from_the_tempered_softmax(model, logp_of, temperature):
  prompt, n = list(b"for i in ra"), 1024
  (draws,) = model.sample([prompt], n=n, max_new=1, temperature=temperature, seed=1, batch_size=512)
  logits_v = logp_of([[model.tokenizer.eos_id] + prompt])[0, len(prompt)] / temperature
  p_v = np.exp(logits_v - logits_v.max())
  p_v /= p_v.sum()
  top = int(np.argmax(p_v))
  seen = np.mean([d[0] == top for d in draws])
  assert abs(seen - p_v[top]) < 4 * np.sqrt(p_v[top] * (1 - p_v[top]) / n) + 1e-3, (seen, p_v[top])
  assert draws == model.sample([prompt], n=n, max_new=1, temperature=temperature, seed=1, batch_size=512)[0]


def test_batches_fit_the_mesh_and_the_routing_groups(tmp_path):
  cfg = tiny(str(tmp_path), "moe.expansion_rate=4", "moe.router=expert_choice", "moe.group_size=16",
             "train.batch_size=32")  # fmt: skip
  bare = engine.Model(cfg, 0, sharding.make_mesh(cfg.mesh), train.graphdef(cfg), None, None)
  assert bare.row_multiple == 16  # lcm(8 batch-sharded devices, groups of 16 sequences)
  assert [bare.rows_per_batch(b) for b in (0, 1, 16, 17)] == [32, 16, 16, 32]


# Chance on line_end is 1/4. With 400 examples an accuracy's standard error at chance is 0.022, so a
# margin of 0.08 (3.7 standard errors) leaves an at-chance model outside it with probability < 1e-3,
# while the trained model (0.38–0.45 over three task seeds) clears it.
LINE_END_EXAMPLES, MARGIN = 400, 0.08


def test_trained_model_beats_chance_and_untrained_does_not(trained, model):
  options = runner.Options(limit=LINE_END_EXAMPLES, batch_size=64, samples=4)
  line_end = runner.build_task("line_end", trained.cfg, options)
  brackets = runner.build_task("close_brackets", trained.cfg, runner.Options(limit=48))
  assert len(line_end.examples) == LINE_END_EXAMPLES
  state, _, _ = train.init_state(trained.cfg, model.mesh, optim.optimizer(trained.cfg))
  untrained = engine.Model(trained.cfg, 0, model.mesh, model.gdef, state["params"], state["model_state"])
  fresh, learned = runner.score(untrained, line_end, options), runner.score(model, line_end, options)
  assert abs(fresh["acc"] - 0.25) < MARGIN, fresh
  assert learned["acc"] > 0.25 + MARGIN, learned
  assert learned["bpb"] < fresh["bpb"] - 2, (learned, fresh)
  # Random bytes almost never close the brackets and end the line within 24 tokens.
  fresh, learned = runner.score(untrained, brackets, options), runner.score(model, brackets, options)
  assert fresh["pass@4"] < 0.05 < 0.15 < learned["pass@4"], (fresh, learned)
