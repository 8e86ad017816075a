"""Non-learned reference rankings, as floors for the learned models."""

from __future__ import annotations

import numpy as np

from vmle_jax.data.split import EvalSplit, LeaveOneOut
from vmle_jax.eval.ranking import metrics_from_ranks


def popularity_ranks(split: LeaveOneOut, which: str = "valid") -> np.ndarray:
  """Ranks under 'most interactions in the training rows first' (pessimistic ties)."""
  counts = np.bincount(split.train.reshape(-1), minlength=split.num_items + 1).astype(np.int64)
  counts[0] = -1  # padding never competes
  ev: EvalSplit = split.valid if which == "valid" else split.test
  sorted_counts = np.sort(counts[1:])
  target_counts = counts[ev.targets]
  # Items with count >= the target's, minus the target itself.
  at_least = len(sorted_counts) - np.searchsorted(sorted_counts, target_counts, side="left")
  return at_least - 1


def popularity_metrics(split: LeaveOneOut, which: str = "valid") -> dict[str, float]:
  return metrics_from_ranks(popularity_ranks(split, which))
