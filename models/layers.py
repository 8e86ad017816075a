"""Blocks shared by the backbones: traced-rate dropout, causal attention, FFN.

Every rate is an argument (a traced scalar), never a module attribute, so
lanes with different dropout rates share one compiled program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

NEG_INF = -1e9  # large but finite: fully masked rows stay finite (no NaN)


def _lowbias32(h: jax.Array) -> jax.Array:
  """A 32-bit integer hash with good avalanche (C. Wellons' lowbias32)."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x7FEB352D)
  h = h ^ (h >> 15)
  h = h * jnp.uint32(0x846CA68B)
  return h ^ (h >> 16)


def dropout_keep(rng: jax.Array, shape, rate: jax.Array) -> jax.Array:
  """Boolean keep mask with P(keep) = 1 - rate, from a counter hash.

  One threefry draw gives a 32-bit seed; each element's bits are a hash of
  its index and that seed. This is several times cheaper than threefry bits
  per element (which dominated the training step on CPU) and is plenty
  random for dropout; it is deterministic and vmaps over lanes.
  """
  seed = jax.random.bits(rng, (), jnp.uint32)
  size = 1
  for s in shape:
    size *= s
  idx = jax.lax.iota(jnp.uint32, size).reshape(shape)
  bits = _lowbias32(_lowbias32(idx ^ seed) + seed)
  threshold = jnp.minimum(jnp.asarray(rate, jnp.float32), 0.999) * 4294967296.0
  return bits.astype(jnp.float32) >= threshold


def dropout(x: jax.Array, rate: jax.Array, rng: jax.Array | None) -> jax.Array:
  """Inverted dropout with a traced rate; identity when rng is None (eval)."""
  if rng is None:
    return x
  rate = jnp.asarray(rate, jnp.float32)
  keep = dropout_keep(rng, x.shape, rate)
  scale = (1.0 / (1.0 - jnp.minimum(rate, 0.999))).astype(x.dtype)
  return jnp.where(keep, x * scale, jnp.zeros((), x.dtype))


def causal_mask(segments: jax.Array) -> jax.Array:
  """[B, 1, L, L] boolean: query t may attend key s iff s <= t in the same segment.

  `segments` [B, L] holds a segment id per token (0 = padding); an unpacked
  row is one segment, `(seq != 0)`.
  """
  length = segments.shape[-1]
  causal = jnp.tril(jnp.ones((length, length), bool))
  same = segments[:, :, None] == segments[:, None, :]
  return (causal[None] & same & (segments != 0)[:, None, :])[:, None]


def default_positions(length: int) -> jax.Array:
  """Positions counted from the most recent item (0), so left padding never shifts them."""
  return jnp.arange(length - 1, -1, -1)


class CausalSelfAttention(nn.Module):
  """Multi-head softmax attention with a traced attention-dropout rate."""

  hidden: int
  heads: int

  @nn.compact
  def __call__(self, x, mask, attn_rate, rng=None):
    b, l, d = x.shape
    dh = self.hidden // self.heads
    qkv = nn.DenseGeneral((3, self.heads, dh), name="qkv")(x)  # [B, L, 3, H, dh]
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    logits = jnp.einsum("blhd,bshd->bhls", q, k) / jnp.sqrt(dh).astype(x.dtype)
    logits = jnp.where(mask, logits, NEG_INF)
    probs = jax.nn.softmax(logits, axis=-1)
    probs = dropout(probs, attn_rate, rng)
    out = jnp.einsum("bhls,bshd->blhd", probs, v)
    return nn.DenseGeneral(self.hidden, axis=(-2, -1), name="out")(out)


class FeedForward(nn.Module):
  """Position-wise FFN: Dense(mult * D) -> activation -> dropout -> Dense(D)."""

  hidden: int
  mult: int
  activation: str = "gelu"

  @nn.compact
  def __call__(self, x, rate, rng=None):
    act = {"gelu": nn.gelu, "relu": nn.relu}[self.activation]
    h = act(nn.Dense(self.hidden * self.mult, name="up")(x))
    h = dropout(h, rate, rng)
    return nn.Dense(self.hidden, name="down")(h)


def split_rng(rng, n: int):
  """n independent keys, or n Nones in eval mode."""
  if rng is None:
    return [None] * n
  return list(jax.random.split(rng, n))
