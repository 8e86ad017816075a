"""Sequence packing: a batch of users' training rows packed into fewer rows.

Most users are far shorter than `max_len` (Beauty: 9 items on average, rows
of 51), so a plain [B, L+1] batch is mostly padding. Packing places the B
users' segments side by side in R < B rows (first-fit decreasing), with a
segment id per token (attention never crosses segments, targets never cross
a segment boundary) and explicit positions counted from each segment's most
recent input, exactly the positions the unpacked row would have. The loss and
every user's outputs are those of the unpacked batch; only padding work is
saved. R is the smallest multiple of 8 that fits every batch of the epoch.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class PackedEpoch:
  """One epoch of batches as [steps, rows, width] arrays."""

  tokens: np.ndarray  # int32 item ids, 0 = padding
  segments: np.ndarray  # int32, 1.. per user within a row, 0 = padding
  positions: np.ndarray  # int32, distance from the segment's most recent input
  times: np.ndarray | None = None  # int32 seconds, when the data has timestamps

  def arrays(self) -> dict:
    out = {"tokens": self.tokens, "segments": self.segments, "positions": self.positions}
    if self.times is not None:
      out["times"] = self.times
    return out

  @property
  def rows(self) -> int:
    return self.tokens.shape[1]


def _round_up(x: int, m: int) -> int:
  return -(-x // m) * m


def unpacked_epoch(
    train: np.ndarray, batch_idx: np.ndarray, train_times: np.ndarray | None = None
) -> PackedEpoch:
  """The plain layout: one user per row, left-padded, right-anchored positions."""
  tokens = train[batch_idx]  # [S, B, W]
  width = tokens.shape[-1]
  segments = (tokens != 0).astype(np.int32)
  positions = np.broadcast_to(np.maximum(width - 2 - np.arange(width), 0), tokens.shape)
  return PackedEpoch(
      tokens=tokens,
      segments=segments,
      positions=positions.astype(np.int32),
      times=None if train_times is None else train_times[batch_idx],
  )


def pack_epoch(
    train: np.ndarray,
    batch_idx: np.ndarray,
    train_times: np.ndarray | None = None,
    min_rows: int = 8,
) -> PackedEpoch:
  """Packs each batch's rows (users' last L+1 items, left-padded) by first-fit decreasing.

  Vectorized over the batches of the epoch: the k-th longest user of every
  batch is placed in the same iteration.
  """
  steps, batch = batch_idx.shape
  width = train.shape[1]
  lengths_all = (train != 0).sum(axis=1)
  lengths = lengths_all[batch_idx]  # [S, B]
  order = np.argsort(-lengths, axis=1, kind="stable")
  users = np.take_along_axis(batch_idx, order, axis=1)
  lens = np.take_along_axis(lengths, order, axis=1)
  max_bins = batch
  free = np.full((steps, max_bins), width, np.int64)
  bin_of = np.zeros((steps, batch), np.int64)
  start_of = np.zeros((steps, batch), np.int64)
  rows_s = np.arange(steps)
  for k in range(batch):
    need = lens[:, k]
    fits = free >= need[:, None]
    b = np.argmax(fits, axis=1)  # first bin with room (always exists: bins == users)
    bin_of[:, k] = b
    start_of[:, k] = width - free[rows_s, b]
    free[rows_s, b] -= need
  used = (free < width).sum(axis=1)
  rows = min(batch, max(min_rows, _round_up(int(used.max()), 8)))
  tokens = np.zeros((steps, rows, width), np.int32)
  segments = np.zeros((steps, rows, width), np.int32)
  positions = np.zeros((steps, rows, width), np.int32)
  # Segment ids: rank of the user inside its bin (1-based), from the placement order.
  seg_id = np.zeros((steps, batch), np.int64)
  counts = np.zeros((steps, max_bins), np.int64)
  for k in range(batch):
    counts[rows_s, bin_of[:, k]] += 1
    seg_id[:, k] = counts[rows_s, bin_of[:, k]]
  # Scatter every token: user (s, k) owns columns start..start+n-1 of row bin.
  s_idx, k_idx = np.nonzero(lens > 0)
  n = lens[s_idx, k_idx]
  total = int(n.sum())
  rep = np.repeat(np.arange(len(n)), n)
  offset = np.arange(total) - np.repeat(np.cumsum(n) - n, n)  # 0..n-1 within a segment
  s_tok = s_idx[rep]
  k_tok = k_idx[rep]
  src_col = width - n[rep] + offset
  dst_col = start_of[s_tok, k_tok] + offset
  dst_row = bin_of[s_tok, k_tok]
  tokens[s_tok, dst_row, dst_col] = train[users[s_tok, k_tok], src_col]
  segments[s_tok, dst_row, dst_col] = seg_id[s_tok, k_tok]
  positions[s_tok, dst_row, dst_col] = np.maximum(n[rep] - 2 - offset, 0)
  times = None
  if train_times is not None:
    times = np.zeros((steps, rows, width), np.int32)
    times[s_tok, dst_row, dst_col] = train_times[users[s_tok, k_tok], src_col]
  return PackedEpoch(tokens=tokens, segments=segments, positions=positions, times=times)
