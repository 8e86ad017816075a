"""Blocks shared by the backbones: traced-rate dropout, causal attention, FFN, and
LayerNorm and softmax whose reductions are matmuls (faster on the CPU).

Every rate is an argument (a traced scalar), never a module attribute, so
lanes with different dropout rates share one compiled program.
"""

from __future__ import annotations

import functools

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


def _row_mean(x: jax.Array) -> jax.Array:
  """Mean over the last axis as a matmul with a constant column.

  On the CPU XLA's reduce over a minor axis of 64 runs at about half the speed of
  this matmul, and such reductions are most of LayerNorm's and softmax's cost.
  """
  return x @ jnp.full((x.shape[-1], 1), 1.0 / x.shape[-1], x.dtype)


def _row_sum(x: jax.Array) -> jax.Array:
  """Sum over the last axis as a matmul (see `_row_mean`)."""
  return x @ jnp.ones((x.shape[-1], 1), x.dtype)


def _column_sum(x: jax.Array) -> jax.Array:
  """Sum over every axis but the last, as one matmul (the parameter gradients)."""
  rows = x.reshape(-1, x.shape[-1])
  return (jnp.ones((1, rows.shape[0]), x.dtype) @ rows)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float = 1e-6) -> jax.Array:
  """LayerNorm over the last axis (two-pass variance), with a hand-written backward.

  The same function as flax's LayerNorm up to float32 rounding; forward and
  backward make fewer passes over x than autodiff's, and every reduction is a
  matmul (fwd+bwd of a [1210, 64] block: 0.23 against 0.37 ms on the CPU).
  """
  return _layer_norm_forward(x, scale, bias, eps)[0]


def _layer_norm_forward(x, scale, bias, eps):
  centred = x - _row_mean(x)
  inv = jax.lax.rsqrt(_row_mean(centred * centred) + eps)
  normed = centred * inv
  return normed * scale + bias, (normed, inv, scale)


def _layer_norm_backward(eps, res, dy):
  del eps
  normed, inv, scale = res
  dnormed = dy * scale
  dx = inv * (dnormed - _row_mean(dnormed) - normed * _row_mean(dnormed * normed))
  return dx, _column_sum(dy * normed), _column_sum(dy)


layer_norm.defvjp(_layer_norm_forward, _layer_norm_backward)


@jax.custom_vjp
def softmax(logits: jax.Array) -> jax.Array:
  """Softmax over the last axis with its sums as matmuls (see `_row_mean`).

  jax.nn.softmax up to float32 rounding; its backward, p * (g - sum(g * p)),
  is written out so that autodiff adds no further passes.
  """
  return _softmax_forward(logits)[0]


def _softmax_forward(logits):
  shifted = jnp.exp(logits - logits.max(axis=-1, keepdims=True))
  probs = shifted / _row_sum(shifted)
  return probs, probs


softmax.defvjp(_softmax_forward, lambda probs, g: (probs * (g - _row_sum(g * probs)),))


class LayerNorm(nn.Module):
  """flax's LayerNorm parameters (`scale`, `bias`) on `layer_norm`; float32 in and out."""

  epsilon: float = 1e-6

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    d = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (d,))
    bias = self.param("bias", nn.initializers.zeros, (d,))
    return layer_norm(x.astype(jnp.float32), scale, bias, self.epsilon)


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


def l2_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


def rotary(x: jax.Array, positions: jax.Array) -> jax.Array:
  """Rotary position embedding of x [B, L, H, d] (d even) at integer positions [B, L]."""
  d = x.shape[-1]
  half = d // 2
  freqs = 1.0 / (10000.0 ** (jnp.arange(half, dtype=jnp.float32) / half))
  angles = positions[..., None].astype(jnp.float32) * freqs  # [B, L, half]
  cos, sin = jnp.cos(angles)[:, :, None], jnp.sin(angles)[:, :, None]
  x1, x2 = x[..., :half], x[..., half : 2 * half]
  rotated = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
  return jnp.concatenate([rotated, x[..., 2 * half :]], axis=-1) if d % 2 else rotated


class RelativePositionBias(nn.Module):
  """A learned bias per head for each distance between key and query positions."""

  max_len: int
  heads: int

  @nn.compact
  def __call__(self, positions: jax.Array, query_positions: jax.Array | None = None) -> jax.Array:
    """[B, H, Lq, Lk] biases; queries at `query_positions` (default: every position)."""
    table = self.param("table", nn.initializers.zeros, (self.heads, 2 * self.max_len - 1))
    query_positions = positions if query_positions is None else query_positions
    # positions count back from the most recent item: a key s before query t
    # has positions[s] >= positions[t].
    delta = positions[:, None, :] - query_positions[:, :, None] + self.max_len - 1
    delta = jnp.clip(delta, 0, 2 * self.max_len - 2)
    return jnp.moveaxis(table[:, delta], 0, 1)  # [B, H, Lq, Lk]


def time_bucket_bias(
    table: jax.Array, times: jax.Array, query_times: jax.Array | None = None
) -> jax.Array:
  """[B, H, Lq, Lk] bias from `table` [H, buckets + 1] for log-spaced buckets of |t_q - t_k|
  (queries at `query_times`, default: every position).

  Bucket = floor(log(max(gap, 1)) / 0.301), i.e. about one bucket per doubling
  of the gap in seconds, clipped to the last bucket.
  """
  buckets = table.shape[1] - 1
  query_times = times if query_times is None else query_times
  gap = jnp.abs(query_times[:, :, None] - times[:, None, :]).astype(jnp.float32)
  bucket = jnp.floor(jnp.log(jnp.maximum(gap, 1.0)) / 0.301).astype(jnp.int32)
  return jnp.moveaxis(table[:, jnp.clip(bucket, 0, buckets)], 0, 1)


class CausalSelfAttention(nn.Module):
  """Multi-head softmax attention with a traced attention-dropout rate.

  Optional: an additive bias [B, H, Lq, L] (relative positions) and rotary
  embeddings of queries and keys at `rope_positions`. With `last_only`, only
  the last position queries (evaluation needs no other): the mask and the
  bias then hold that one query row.
  """

  hidden: int
  heads: int
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask, attn_rate, rng=None, bias=None, rope_positions=None, last_only=False):
    dh = self.hidden // self.heads
    qkv = nn.DenseGeneral((3, self.heads, dh), dtype=self.dtype, name="qkv")(x)  # [B, L, 3, H, dh]
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if last_only:
      q = q[:, -1:]
    if rope_positions is not None:
      q_positions = rope_positions[:, -1:] if last_only else rope_positions
      q, k = rotary(q, q_positions), rotary(k, rope_positions)
    logits = jnp.einsum("blhd,bshd->bhls", q, k).astype(jnp.float32) / jnp.sqrt(float(dh))
    if bias is not None:
      logits = logits + bias
    logits = jnp.where(mask, logits, NEG_INF)
    probs = softmax(logits)
    probs = dropout(probs, attn_rate, rng)
    out = jnp.einsum("bhls,bshd->blhd", probs.astype(v.dtype), v)
    return nn.DenseGeneral(self.hidden, axis=(-2, -1), dtype=self.dtype, name="out")(out)


class FeedForward(nn.Module):
  """Position-wise FFN: GELU/ReLU (Dense, act, dropout, Dense) or SwiGLU (gated SiLU)."""

  hidden: int
  mult: int
  activation: str = "gelu"
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, rate, rng=None):
    inner = self.hidden * self.mult
    if self.activation == "swiglu":
      gate, value = jnp.split(nn.Dense(2 * inner, dtype=self.dtype, name="up")(x), 2, axis=-1)
      h = nn.silu(gate) * value
    else:
      act = {"gelu": nn.gelu, "relu": nn.relu}[self.activation]
      h = act(nn.Dense(inner, dtype=self.dtype, name="up")(x))
    h = dropout(h, rate, rng)
    return nn.Dense(self.hidden, dtype=self.dtype, name="down")(h)


def row_layout(seq, positions=None, segments=None):
  """Positions, segment ids and the [B, L, 1] validity mask of a (packed or plain) row."""
  if positions is None:
    positions = jnp.broadcast_to(default_positions(seq.shape[-1]), seq.shape)
  if segments is None:
    segments = (seq != 0).astype(jnp.int32)
  return positions, segments, (seq != 0)[..., None].astype(jnp.float32)


class ItemTables(nn.Module):
  """The item side every backbone shares: input embeddings (with learned absolute
  positions if chosen, optionally scaled by sqrt(D)) and the output item table
  (tied or separate, optionally L2-normalised)."""

  cfg: "object"
  num_items: int

  def setup(self):
    cfg = self.cfg
    init = nn.initializers.normal(stddev=1.0)  # rescaled per lane by init_std (steps.init_lane)
    self.items = nn.Embed(self.num_items + 1, cfg.hidden, embedding_init=init, name="items")
    if cfg.positions == "learned":
      self.positions = nn.Embed(cfg.max_len, cfg.hidden, embedding_init=init, name="positions")
    if not cfg.tie_embeddings:
      self.out_items = nn.Embed(
          self.num_items + 1, cfg.hidden, embedding_init=init, name="out_items"
      )

  def embed(self, seq, positions):
    x = self.items(seq)
    if self.cfg.scale_embeddings:
      x = x * jnp.sqrt(float(self.cfg.hidden))
    if self.cfg.positions == "learned":
      x = x + self.positions(positions)
    return x

  def output_table(self):
    table = self.items.embedding if self.cfg.tie_embeddings else self.out_items.embedding
    return l2_normalize(table) if self.cfg.l2_norm else table


class OutputHead(nn.Module):
  """Turns final hidden states into query vectors: optional L2 norm, then / temperature."""

  l2_norm: bool

  def __call__(self, h, temperature):
    if self.l2_norm:
      h = l2_normalize(h)
    return h / temperature


def split_rng(rng, n: int):
  """n independent keys, or n Nones in eval mode."""
  if rng is None:
    return [None] * n
  return list(jax.random.split(rng, n))
