"""Vocabulary padding: a padded model computes the unpadded model's loss; tensor parallelism at 50257."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from mixlaws import models, optim, sharding, train
from mixlaws.models import transformer


def test_padded_vocabulary_gives_the_unpadded_loss(tiny_config):
  cfg = tiny_config("model.n_layers=1", "model.d_model=16", "model.n_heads=2")
  plain = models.Transformer(cfg.model, cfg.moe, rngs=nnx.Rngs(0))
  padded = models.Transformer(cfg.model, cfg.moe, rngs=nnx.Rngs(0), vocab_multiple=128)
  assert padded.embed.shape == (384, 16) and padded.unembed.shape == (16, 384)  # 259 → 3 × 128
  np.testing.assert_array_equal(padded.embed[...][:259], plain.embed[...])  # same draws at the real shape
  tokens_bt = jnp.asarray(np.random.default_rng(0).integers(0, 259, (4, 9)), jnp.int32)

  def loss(model):
    logits_btv, _ = model(tokens_bt[:, :-1], train=True)
    total, count = train.token_losses(logits_btv, tokens_bt, pad_id=-1)
    return total / count

  np.testing.assert_allclose(float(loss(padded)), float(loss(plain)), rtol=1e-6)
  logits_btv, _ = padded(tokens_bt[:, :-1], train=False)
  assert int(jnp.argmax(logits_btv, -1).max()) < 259  # eval scoring never picks a padded entry
  assert transformer.padded_vocab_size(50257, 256) == 50432


def test_tensor_parallel_step_runs_at_the_papers_vocabulary(tiny_config):
  cfg = tiny_config("model.n_layers=1", "model.d_model=16", "model.n_heads=2", "model.vocab_size=50257",
                    "mesh.tensor=2", "train.batch_size=8")  # fmt: skip
  mesh = sharding.make_mesh(cfg.mesh)
  tx = optim.optimizer(cfg)
  state, shardings, _ = train.init_state(cfg, mesh, tx)
  assert state["params"]["unembed"].shape == (16, 50432)  # a multiple of 128 × tensor
  batch_sharding = train.batch_sharding(cfg, mesh)
  step = jax.jit(train.make_train_step(cfg, train.graphdef(cfg), tx, mesh), out_shardings=(shardings, None))
  batch = jax.device_put(jnp.ones((8, cfg.model.seq_len + 1), jnp.int32), batch_sharding)
  lr = jax.device_put(jnp.float32(1e-3), NamedSharding(mesh, PartitionSpec()))
  _, metrics = step(state, batch, lr)
  assert np.isfinite(float(metrics["loss"]))
