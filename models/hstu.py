"""HSTU (Zhai et al., 2024, "Actions Speak Louder than Words"): pointwise SiLU attention.

One block, for x [B, L, D]:
  U, V, Q, K = split(SiLU(Dense(LN(x))))       U, V: heads x linear_dim; Q, K: heads x attention_dim
  A = SiLU(Q K^T + rab) / n, masked causal     rab: learned relative-position bias, plus a
                                               time-bucket bias when timestamps exist
  Y = Dense(dropout(LN(A V) * U)) + x
with attention dropout on A. The normaliser n is a documented choice
(`attn_norm`): "max_len", the maximal sequence length as in the reference
implementation (independent of padding and packing), or "count", the
number of keys each query attends to. Both divide a row of A V by one
positive number, which the LayerNorm that follows removes up to its epsilon:
the choice barely changes the computation (the numpy test checks both), so
it is not among the switches the agent searches. Input embeddings are scaled by
sqrt(D) and dropped out; queries and item vectors are L2-normalised and the
scores divided by a (traced) temperature. Positional scheme: relative bias
(the paper's), learned absolute positions, or rotary embeddings of Q and K.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from vmle_jax.models.layers import (
    ItemTables,
    LayerNorm,
    OutputHead,
    RelativePositionBias,
    causal_mask,
    dropout,
    rotary,
    row_layout,
    split_rng,
    time_bucket_bias,
)


class HSTUBlock(nn.Module):
  """One HSTU layer; see the module docstring."""

  hidden: int
  heads: int
  linear_dim: int
  attention_dim: int
  max_len: int
  positions: str
  attn_norm: str
  time_buckets: int
  use_time: bool
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask, positions, times, rates, rngs, last_only=False):
    """x [B, L, D] -> [B, L, D]; with `last_only` (evaluation) only the last position
    queries and the result is [B, 1, D] (`mask` then holds that one query row)."""
    h, ld, ad = self.heads, self.linear_dim, self.attention_dim
    b, l, _ = x.shape
    normed = LayerNorm(epsilon=1e-6, name="ln_in")(x)
    uvqk = nn.silu(nn.Dense(h * (2 * ld + 2 * ad), dtype=self.dtype, name="uvqk")(normed))
    u, v, q, k = jnp.split(uvqk, [h * ld, 2 * h * ld, 2 * h * ld + h * ad], axis=-1)
    q_positions, q_times, lq = positions, times, l
    if last_only:
      u, q, x, lq = u[:, -1:], q[:, -1:], x[:, -1:], 1
      q_positions = positions[:, -1:]
      q_times = None if times is None else times[:, -1:]
    q, k = q.reshape(b, lq, h, ad), k.reshape(b, l, h, ad)
    v = v.reshape(b, l, h, ld)
    if self.positions == "rope":
      q, k = rotary(q, q_positions), rotary(k, positions)
    logits = jnp.einsum("blhd,bshd->bhls", q, k).astype(jnp.float32)
    if self.positions == "relative":
      bias = RelativePositionBias(self.max_len, h, name="rel_bias")
      logits = logits + bias(positions, q_positions)
    if self.use_time:
      table = self.param("time_bias", nn.initializers.zeros, (h, self.time_buckets + 1))
      if times is not None:  # data without timestamps: the time term is off
        logits = logits + time_bucket_bias(table, times, q_times)
    attn = nn.silu(logits)
    if self.attn_norm == "count":
      norm = jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1).astype(attn.dtype)
    else:
      norm = jnp.asarray(self.max_len, attn.dtype)
    attn = jnp.where(mask, attn / norm, 0.0)
    attn = dropout(attn, rates["attn_dropout"], rngs[0])
    av = jnp.einsum("bhls,bshd->blhd", attn.astype(v.dtype), v).reshape(b, lq, h * ld)
    y = LayerNorm(epsilon=1e-6, name="ln_av")(av.astype(jnp.float32)) * u
    y = dropout(y, rates["dropout"], rngs[1])
    return (nn.Dense(self.hidden, dtype=self.dtype, name="out")(y) + x).astype(jnp.float32)


class HSTU(nn.Module):
  """HSTU over left-padded (or packed) item ids; see the module docstring."""

  cfg: "object"
  num_items: int
  dtype: str = "float32"  # matmul dtype of the dense layers

  def setup(self):
    cfg = self.cfg
    self.tables = ItemTables(cfg, self.num_items, name="tables")
    self.blocks = [
        HSTUBlock(
            cfg.hidden,
            cfg.heads,
            cfg.linear_dim,
            cfg.attention_dim,
            cfg.max_len,
            cfg.positions,
            cfg.attn_norm,
            cfg.time_buckets,
            cfg.time_bias,
            self.dtype,
            name=f"block_{i}",
        )
        for i in range(cfg.blocks)
    ]
    self.head = OutputHead(cfg.l2_norm)

  def encode(
      self, seq, rates, rng=None, positions=None, segments=None, times=None, last_only=False
  ):
    """Query vectors [B, L, D]; `times` [B, L] (seconds) feed the time bias when given.
    With `last_only` the last block computes the last position only: [B, 1, D]."""
    cfg = self.cfg
    positions, segments, valid = row_layout(seq, positions, segments)
    x = self.tables.embed(seq, positions)
    rngs = split_rng(rng, 1 + 2 * cfg.blocks)
    x = dropout(x, rates["dropout"], rngs[0]) * valid
    mask = causal_mask(segments)
    for i, block in enumerate(self.blocks):
      last = last_only and i == cfg.blocks - 1
      x = block(
          x,
          mask[:, :, -1:] if last else mask,
          positions,
          times,
          rates,
          rngs[1 + 2 * i : 3 + 2 * i],
          last,
      ) * (valid[:, -1:] if last else valid)
    return self.head(x, rates["temperature"])

  def item_table(self):
    return self.tables.output_table()

  def __call__(
      self, seq, rates, rng=None, positions=None, segments=None, times=None, last_only=False
  ):
    return self.encode(seq, rates, rng, positions, segments, times, last_only), self.item_table()
