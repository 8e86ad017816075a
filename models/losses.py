"""Training losses over query vectors and an item table, one interface for all backbones.

Each loss takes queries q [B, L, D], the item table [N + 1, D], targets
[B, L] (0 = padding, not supervised) and a key for negative sampling, and
returns the mean loss over supervised positions. Negatives are drawn
uniformly from 1..N; a negative equal to its position's positive is masked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vmle_jax.models.layers import NEG_INF


def _masked_mean(values, mask):
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def bce_loss(q, table, targets, rng, num_negatives: int = 1):
  """Binary cross-entropy with `num_negatives` sampled negatives per position (SASRec)."""
  n_items = table.shape[0] - 1
  negs = jax.random.randint(rng, targets.shape + (num_negatives,), 1, n_items + 1)
  pos_logit = jnp.einsum("bld,bld->bl", q, table[targets])
  neg_logit = jnp.einsum("bld,blnd->bln", q, table[negs])
  neg_loss = jax.nn.softplus(neg_logit) * (negs != targets[..., None])
  loss = jax.nn.softplus(-pos_logit) + jnp.sum(neg_loss, axis=-1)
  return _masked_mean(loss, targets != 0)


def sampled_softmax_loss(q, table, targets, rng, num_negatives: int = 256):
  """Softmax over the positive and `num_negatives` negatives shared by the batch."""
  n_items = table.shape[0] - 1
  negs = jax.random.randint(rng, (num_negatives,), 1, n_items + 1)
  pos_logit = jnp.einsum("bld,bld->bl", q, table[targets])
  neg_logit = jnp.einsum("bld,nd->bln", q, table[negs])
  neg_logit = jnp.where(negs[None, None, :] == targets[..., None], NEG_INF, neg_logit)
  logits = jnp.concatenate([pos_logit[..., None], neg_logit], axis=-1)
  loss = jax.nn.logsumexp(logits, axis=-1) - pos_logit
  return _masked_mean(loss, targets != 0)


def softmax_loss(q, table, targets, rng=None, num_negatives: int = 0):
  """Full softmax cross-entropy over all items (padding column excluded)."""
  del rng, num_negatives
  logits = jnp.einsum("bld,nd->bln", q, table)
  logits = logits.at[..., 0].set(NEG_INF)
  pos_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  loss = jax.nn.logsumexp(logits, axis=-1) - pos_logit
  return _masked_mean(loss, targets != 0)


LOSSES = {"bce": bce_loss, "sampled_softmax": sampled_softmax_loss, "softmax": softmax_loss}


def compute_loss(name: str, q, table, targets, rng, num_negatives: int):
  """Dispatches to the loss called `name` (static)."""
  return LOSSES[name](q, table, targets, rng, num_negatives)
