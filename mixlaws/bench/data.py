"""`mixlaws bench data`: tokens/s of the input pipeline against tokens/s of training a ~20M dense model.

Target (issue 4): the pipeline produces batches at least 20x faster than the model trains on them,
so input never limits training. Both rates are measured in one process, a moment apart; the
training rate is one jitted AdamW step (forward and backward) of the model the config describes.
The first preparation of a local corpus (TFDS build plus tokenization) is timed on a fresh data dir.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time

from mixlaws import bench, counting
from mixlaws.config import Config

TARGET_RATIO = 20.0
# The ~20M-non-embedding-parameter dense model: 6 blocks of width 512, SwiGLU FFN 3·d (13·d² per block).
MODEL_OVERRIDES = ("model.d_model=512", "model.n_layers=6", "model.vocab_size=259", "model.seq_len=256")


def prepare_cold(cfg: Config, work_dir: str | None) -> tuple[Config, dict[str, float], str | None]:
  """Prepares the data, on a fresh data dir for a local corpus so the cold first run is timed."""
  from mixlaws import data

  tmp = None
  if cfg.data.source in ("stdlib", "files"):
    tmp = tempfile.mkdtemp(prefix="mixlaws-bench-data-", dir=work_dir)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_dir=tmp))
  tok = data.tokenizer(cfg.data)
  start = time.perf_counter()
  data.prepare(cfg.data, tok)
  prepare_s = time.perf_counter() - start
  start = time.perf_counter()
  data.TrainIterator(cfg)
  reopen_s = time.perf_counter() - start
  return cfg, {"prepare_s": prepare_s, "reopen_s": reopen_s}, tmp


def pipeline_tokens_per_s(cfg: Config, batch_size: int, batches: int, repeats: int = 3) -> float:
  """Target tokens per second of `TrainIterator.next` (batch_size · seq_len per batch)."""
  from mixlaws import data

  it = data.TrainIterator(cfg)
  seconds = bench.best_time(lambda: [it.next(batch_size) for _ in range(batches)], repeats=repeats, warmup=1)
  return batches * batch_size * cfg.model.seq_len / seconds


def train_tokens_per_s(cfg: Config, batch_size: int, repeats: int = 3) -> float:
  """Target tokens per second of one jitted AdamW step (forward + backward) of the configured model."""
  import jax
  import optax
  from flax import nnx

  from mixlaws import data, models

  model = models.Transformer(cfg.model, cfg.moe, rngs=nnx.Rngs(0))
  gdef, params, model_state = nnx.split(model, nnx.Param, ...)
  tx = optax.adamw(1e-3)

  @jax.jit
  def step(params, opt_state, batch_bt):
    def loss_fn(p):
      logits_btv, _ = nnx.merge(gdef, p, model_state)(batch_bt[:, :-1], train=True)
      return optax.softmax_cross_entropy_with_integer_labels(logits_btv, batch_bt[:, 1:]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  batch_bt = jax.numpy.asarray(data.TrainIterator(cfg).next(batch_size))
  state = [params, tx.init(params)]

  def one_step() -> None:
    state[0], state[1], loss = step(state[0], state[1], batch_bt)
    loss.block_until_ready()

  seconds = bench.best_time(one_step, repeats=repeats, warmup=1)  # the warmup call compiles
  return batch_size * cfg.model.seq_len / seconds


def run(cfg: Config, batch_size: int = 8, batches: int = 200, train_repeats: int = 3, work_dir: str | None = None):
  """Times preparation, the pipeline and a training step; returns the report."""
  cfg, prep, tmp = prepare_cold(cfg, work_dir)
  try:
    pipeline = pipeline_tokens_per_s(cfg, batch_size, batches)
    train = train_tokens_per_s(cfg, batch_size, train_repeats)
  finally:
    if tmp:
      shutil.rmtree(tmp, ignore_errors=True)
  params = counting.run_counts(cfg).params
  ratio = pipeline / train
  return {
    "machine": bench.machine(),
    "workload": {
      "source": cfg.data.dataset or cfg.data.source,
      "tokenizer": cfg.data.tokenizer,
      "seq_len": cfg.model.seq_len,
      "batch_size": batch_size,
      "non_embedding_params": int(params.non_embedding),
      "first_prepare_s": round(prep["prepare_s"], 2),
      "reopen_s": round(prep["reopen_s"], 3),
    },
    "results": [
      {
        "case": "pipeline: TrainIterator.next",
        "tokens_per_s": round(pipeline),
        "x_training": round(ratio, 1),
        "target": f">= {TARGET_RATIO:g}x",
      },  # fmt: skip
      {
        "case": "training: jitted AdamW step (forward + backward)",
        "tokens_per_s": round(train),
        "x_training": 1.0,
        "target": "",
      },  # fmt: skip
    ],
    "meets_target": ratio >= TARGET_RATIO,
  }


def headline(report: dict) -> list[dict]:
  """The figure the target is stated in, for `mixlaws bench all`."""
  ratio = report["results"][0]["x_training"]
  return [bench.figure("input pipeline tokens/s ÷ training tokens/s (~20M dense)", ratio, f">= {TARGET_RATIO:g}",
                       report["meets_target"])]  # fmt: skip
