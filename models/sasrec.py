"""SASRec (Kang & McAuley, 2018): causal self-attention over the item sequence.

Item embeddings (optionally scaled by sqrt(D)) plus a positional scheme:
learned absolute positions counted from the most recent item (so left
padding never shifts them), a learned relative bias in every attention
block, or rotary embeddings of queries and keys. Then `blocks` causal
attention + FFN (GELU, ReLU or SwiGLU) blocks, pre-LN (with a final
LayerNorm) or post-LN. Scores are dot products with the input table (tied)
or a separate output table, optionally between L2-normalised vectors, and
divided by a (traced) temperature.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from vmle_jax.models.layers import (
    CausalSelfAttention,
    FeedForward,
    ItemTables,
    LayerNorm,
    OutputHead,
    RelativePositionBias,
    causal_mask,
    dropout,
    row_layout,
    split_rng,
)


class SASRec(nn.Module):
  """SASRec over left-padded (or packed) item ids; see the module docstring."""

  cfg: "object"  # the static view of a TrialConfig (hashable)
  num_items: int
  dtype: str = "float32"  # matmul dtype of the dense layers

  def setup(self):
    cfg = self.cfg
    self.tables = ItemTables(cfg, self.num_items, name="tables")
    self.attn = [
        CausalSelfAttention(cfg.hidden, cfg.heads, self.dtype, name=f"attn_{i}")
        for i in range(cfg.blocks)
    ]
    if cfg.positions == "relative":
      self.rel_bias = [
          RelativePositionBias(cfg.max_len, cfg.heads, name=f"rel_bias_{i}")
          for i in range(cfg.blocks)
      ]
    self.ffn = [
        FeedForward(cfg.hidden, cfg.ffn_mult, cfg.ffn, self.dtype, name=f"ffn_{i}")
        for i in range(cfg.blocks)
    ]
    self.ln_attn = [LayerNorm(epsilon=1e-6, name=f"ln_attn_{i}") for i in range(cfg.blocks)]
    self.ln_ffn = [LayerNorm(epsilon=1e-6, name=f"ln_ffn_{i}") for i in range(cfg.blocks)]
    if cfg.norm == "pre":
      self.ln_final = LayerNorm(epsilon=1e-6, name="ln_final")
    self.head = OutputHead(cfg.l2_norm)

  def encode(
      self,
      seq: jax.Array,
      rates: dict,
      rng: jax.Array | None = None,
      positions: jax.Array | None = None,
      segments: jax.Array | None = None,
      times: jax.Array | None = None,
      last_only: bool = False,
  ) -> jax.Array:
    """Query vectors [B, L, D] for item ids `seq` [B, L]; rng=None means eval.

    `positions` and `segments` describe packed rows (see data/packing.py);
    by default a row is one left-padded user with right-anchored positions.
    SASRec ignores `times`. With `last_only` the last block computes the last
    position only and the result is [B, 1, D] (the same values: evaluation).
    """
    del times
    cfg = self.cfg
    positions, segments, valid = row_layout(seq, positions, segments)
    x = self.tables.embed(seq, positions)
    rngs = split_rng(rng, 1 + 4 * cfg.blocks)
    x = dropout(x, rates["dropout"], rngs[0]) * valid
    mask = causal_mask(segments)
    rope = positions if cfg.positions == "rope" else None
    for i in range(cfg.blocks):
      r_attn, r_res, r_ffn, r_out = rngs[1 + 4 * i : 5 + 4 * i]
      last = last_only and i == cfg.blocks - 1  # only the last query row from here on
      queries = positions[:, -1:] if last else None
      bias = self.rel_bias[i](positions, queries) if cfg.positions == "relative" else None
      block_mask = mask[:, :, -1:] if last else mask
      attn_rate = rates["attn_dropout"]
      if cfg.norm == "pre":
        h = self.attn[i](self.ln_attn[i](x), block_mask, attn_rate, r_attn, bias, rope, last)
        x = (x[:, -1:] if last else x) + dropout(h, rates["dropout"], r_res)
        h = self.ffn[i](self.ln_ffn[i](x), rates["dropout"], r_ffn)
        x = x + dropout(h, rates["dropout"], r_out)
      else:
        h = self.attn[i](x, block_mask, attn_rate, r_attn, bias, rope, last)
        x = self.ln_attn[i]((x[:, -1:] if last else x) + dropout(h, rates["dropout"], r_res))
        h = self.ffn[i](x, rates["dropout"], r_ffn)
        x = self.ln_ffn[i](x + dropout(h, rates["dropout"], r_out))
      x = x.astype(jnp.float32) * (valid[:, -1:] if last else valid)
    if cfg.norm == "pre":
      x = self.ln_final(x)
    return self.head(x, rates["temperature"])

  def item_table(self) -> jax.Array:
    """Output item vectors [num_items + 1, D]."""
    return self.tables.output_table()

  def __call__(
      self, seq, rates, rng=None, positions=None, segments=None, times=None, last_only=False
  ):
    return self.encode(seq, rates, rng, positions, segments, times, last_only), self.item_table()
