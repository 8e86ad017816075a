"""The in-memory form of a sequential data set: per-user item sequences in CSR.

Every loader returns a `SequenceDataset`; everything downstream (splits,
batches, fingerprints, the memory's data-set stats) reads only this.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np


class DataError(ValueError):
  """Bad input data; the message names the file, the line and the problem."""


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceDataset:
  """Chronological item sequences of all users, item ids 1..num_items (0 pads).

  Attributes:
    name: short name used in reports and the memory (e.g. "beauty").
    items: all users' items concatenated, int32.
    offsets: user u owns items[offsets[u]:offsets[u + 1]], int64, length U + 1.
    num_items: the largest item id; the item table has num_items + 1 rows.
    timestamps: seconds since the epoch aligned with `items`, or None.
    source: where the data came from (a path or "synthetic(...)").
  """

  name: str
  items: np.ndarray
  offsets: np.ndarray
  num_items: int
  timestamps: np.ndarray | None = None
  source: str = ""

  @property
  def num_users(self) -> int:
    return len(self.offsets) - 1

  @property
  def num_interactions(self) -> int:
    return int(self.offsets[-1])

  @property
  def lengths(self) -> np.ndarray:
    return np.diff(self.offsets)

  def sequence(self, user: int) -> np.ndarray:
    return self.items[self.offsets[user] : self.offsets[user + 1]]

  def times(self, user: int) -> np.ndarray | None:
    if self.timestamps is None:
      return None
    return self.timestamps[self.offsets[user] : self.offsets[user + 1]]

  @classmethod
  def from_sequences(
      cls, name: str, sequences, num_items: int | None = None, timestamps=None, source: str = ""
  ) -> "SequenceDataset":
    """Builds the CSR form from a list of per-user item arrays."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = (
        np.concatenate([np.asarray(s, np.int32) for s in sequences])
        if len(sequences)
        else np.zeros(0, np.int32)
    )
    times = None
    if timestamps is not None:
      times = np.concatenate([np.asarray(t, np.int64) for t in timestamps])
    if num_items is None:
      num_items = int(items.max()) if len(items) else 0
    return cls(
        name=name,
        items=items,
        offsets=offsets,
        num_items=int(num_items),
        timestamps=times,
        source=source,
    )

  def stats(self) -> dict:
    """Users, items, interactions, length quantiles, density, repeats (JSON-ready)."""
    lengths = self.lengths
    q = np.quantile(lengths, [0.0, 0.25, 0.5, 0.75, 0.9, 1.0]) if len(lengths) else [0] * 6
    stats = {
        "users": self.num_users,
        "items": self.num_items,
        "interactions": self.num_interactions,
        "avg_len": round(float(lengths.mean()), 4) if len(lengths) else 0.0,
        "len_quantiles": {
            k: float(v) for k, v in zip(["min", "p25", "p50", "p75", "p90", "max"], q)
        },
        "density": round(self.num_interactions / max(1, self.num_users * self.num_items), 8),
        "has_timestamps": self.timestamps is not None,
        "repeat_rate": round(self.repeat_rate(), 4),
    }
    if self.timestamps is not None and len(self.timestamps):
      stats["time_span_days"] = round(
          float(self.timestamps.max() - self.timestamps.min()) / 86400.0, 2
      )
    return stats

  def repeat_rate(self) -> float:
    """Share of interactions whose item the user had already consumed (re-consumption)."""
    if not self.num_interactions:
      return 0.0
    users = np.repeat(np.arange(self.num_users, dtype=np.int64), self.lengths)
    pairs = users * (int(self.num_items) + 1) + self.items.astype(np.int64)
    return 1.0 - len(np.unique(pairs)) / self.num_interactions

  def fingerprint(self) -> dict:
    """A content hash plus stats: the data set's identity in the memory."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(self.offsets, np.int64).tobytes())
    h.update(np.ascontiguousarray(self.items, np.int32).tobytes())
    if self.timestamps is not None:
      h.update(np.ascontiguousarray(self.timestamps, np.int64).tobytes())
    return {"name": self.name, "sha256": h.hexdigest()[:16], **self.stats()}

  def describe(self) -> str:
    s = self.stats()
    return (
        f"{self.name}: {s['users']:,} users, {s['items']:,} items, "
        f"{s['interactions']:,} interactions, avg len {s['avg_len']:.2f}, "
        f"density {s['density']:.5f}, timestamps {'yes' if s['has_timestamps'] else 'no'}"
    )
