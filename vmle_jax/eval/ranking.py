"""Ranking metrics for next-item prediction.

Full ranking: the rank of the target is the number of *other* items whose
score is greater than or equal to the target's (ties count against the
model: the pessimistic convention, so a constant model scores zero, not
perfect). Padding item 0 never competes. With `history`, items the user has
already seen (other than the target) are removed from the competition.
Items are scored in one block when the block fits (the engine sizes user
chunks so that it does), else in item chunks with two passes, so memory
stays bounded; nothing is sorted. The
target's own score is read from the same matmul that scores the other items,
so exact ties are recognised as ties.

The sampled protocol (rank among the target and 99 sampled items the user
never interacted with) inflates numbers and is only an option, labelled
"sampled-100" wherever it is reported.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_KS = (5, 10, 20)
RANK_TIES = "pessimistic: items scoring equal to the target rank above it"


def target_ranks(
    q: jax.Array,
    table: jax.Array,
    targets: jax.Array,
    history: jax.Array | None = None,
    item_chunk: int = 4096,
) -> jax.Array:
  """0-based full-ranking rank of each target (see the module docstring).

  Args:
    q: [U, D] query vectors (the last position of each user's input).
    table: [N + 1, D] item vectors; row 0 is padding.
    targets: [U] target item ids in 1..N.
    history: optional [U, H] distinct seen item ids (0-padded) to exclude.
    item_chunk: items scored per block; at least N + 1 scores every item in one pass.
  Returns:
    [U] int32 ranks.
  """
  n_rows, dim = table.shape
  seen = None
  if history is not None:
    # A dense seen-mask per user ([U, N] booleans: bounded by the user chunk).
    users = jnp.arange(q.shape[0])[:, None]
    seen = jnp.zeros((q.shape[0], n_rows), bool).at[users, history].set(True)
  if item_chunk >= n_rows:
    # One pass: every score once, the target's read out of the same matmul (so exact
    # ties are seen as ties; a separate dot product may round differently).
    scores = q @ table.T  # [U, N + 1]
    s_t = jnp.take_along_axis(scores, targets[:, None], axis=1)
    ids = jnp.arange(n_rows)
    competes = (ids[None, :] != targets[:, None]) & (ids[None, :] > 0)
    if seen is not None:
      competes = competes & ~seen
    return jnp.sum((scores >= s_t) & competes, axis=1, dtype=jnp.int32)

  # Two passes over item chunks (a catalogue too large for one block of scores): pass 1
  # reads the target's score out of the matmul that scores its chunk, pass 2 counts.
  chunk = item_chunk
  n_chunks = -(-n_rows // chunk)
  padded = jnp.pad(table, ((0, n_chunks * chunk - n_rows), (0, 0)))
  chunks = padded.reshape(n_chunks, chunk, dim)
  starts = jnp.arange(n_chunks, dtype=jnp.int32) * chunk

  def target_score(carry, xs):
    block, start = xs
    scores = q @ block.T
    here = (start + jnp.arange(chunk))[None, :] == targets[:, None]
    return carry + jnp.sum(jnp.where(here, scores, 0.0), axis=1), None

  def count(carry, xs):
    block, start, seen = xs
    ids = start + jnp.arange(chunk)
    scores = q @ block.T  # [U, C]
    competes = (ids[None, :] != targets[:, None]) & (ids[None, :] > 0) & (ids[None, :] < n_rows)
    if seen is not None:
      competes = competes & ~seen
    beats = (scores >= s_t[:, None]) & competes
    return carry + jnp.sum(beats, axis=1, dtype=jnp.int32), None

  if seen is not None:
    seen = jnp.pad(seen, ((0, 0), (0, n_chunks * chunk - n_rows)))
    seen = seen.reshape(q.shape[0], n_chunks, chunk).transpose(1, 0, 2)
  s_t, _ = jax.lax.scan(target_score, jnp.zeros(q.shape[0], q.dtype), (chunks, starts))
  ranks, _ = jax.lax.scan(count, jnp.zeros(q.shape[0], jnp.int32), (chunks, starts, seen))
  return ranks


def sampled_ranks(
    q: jax.Array, table: jax.Array, targets: jax.Array, candidates: jax.Array
) -> jax.Array:
  """Rank of the target among itself and `candidates` [U, C] negatives (pessimistic ties)."""
  target_score = jnp.einsum("ud,ud->u", q, table[targets])
  cand_scores = jnp.einsum("ud,ucd->uc", q, table[candidates])
  return jnp.sum(cand_scores >= target_score[:, None], axis=1, dtype=jnp.int32)


def sample_candidates(
    sequences_seen: np.ndarray, targets: np.ndarray, num_items: int, num: int = 99, seed: int = 0
) -> np.ndarray:
  """`num` uniform negatives per user, none in the user's seen items or equal to the target."""
  rng = np.random.default_rng(seed)
  out = np.zeros((len(targets), num), np.int32)
  for u in range(len(targets)):
    seen = set(sequences_seen[u][sequences_seen[u] > 0].tolist()) | {int(targets[u])}
    got = []
    while len(got) < num:
      draw = rng.integers(1, num_items + 1, size=2 * num)
      got.extend(int(i) for i in draw if i not in seen and i not in got)
    out[u] = got[:num]
  return out


def metrics_from_ranks(ranks, ks=DEFAULT_KS) -> dict[str, float]:
  """HR@k, NDCG@k (one relevant item) and MRR from 0-based ranks."""
  ranks = np.asarray(ranks, np.float64)
  out = {}
  for k in ks:
    hit = ranks < k
    out[f"HR@{k}"] = float(hit.mean())
    out[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
  out["MRR"] = float((1.0 / (ranks + 1.0)).mean())
  return out
