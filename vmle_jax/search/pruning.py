"""Stopping losers early: a rule that freezes a lane that cannot catch up with the study.

The median stopping rule (Golovin et al., "Google Vizier", KDD 2017): after
a grace period, a running trial whose best validation NDCG@10 so far is
below the median of the study's finished trials' best values *at the same
epoch* is stopped. It needs no model of the curves, applies to every
strategy alike (the study loop builds it from the store, whatever proposed
the trials), and never stops a lane that leads: a lane at or above every
finished trial's value at that epoch is always kept.

The study loop sets the grace period to a quarter of the epoch cap (at least
2 epochs), so slow starters get a fair look on long schedules. The engine
calls the rule after each validation; a pruned lane keeps its
best metrics so far (status `pruned`) and stops costing compute once the
bucket is compacted.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from vmle_jax.memory.records import SCORELESS, Trial

RULES = ("none", "median")


@dataclasses.dataclass(frozen=True)
class MedianRule:
  """Stop a lane below the median of finished trials at the same epoch."""

  grace_epochs: int = 2  # never stop before this many epochs
  min_trials: int = 4  # finished trials needed before the rule acts

  def references(self, curves: list[list[dict]], epoch: int) -> np.ndarray:
    """Each finished trial's best NDCG@10 up to `epoch` (its final best if it ended sooner)."""
    out = []
    for curve in curves:
      seen = [
          p["NDCG@10"]
          for p in curve
          if "NDCG@10" in p and p["epoch"] <= epoch and np.isfinite(p["NDCG@10"])
      ]
      if seen:
        out.append(max(seen))
    return np.asarray(out, float)

  def stop(
      self, epoch: int, best: np.ndarray, alive: np.ndarray, curves: list[list[dict]]
  ) -> np.ndarray:
    """Lanes to stop now: alive, past the grace period, below the reference median."""
    best = np.asarray(best, float)
    out = np.zeros(len(best), bool)
    if epoch < self.grace_epochs:
      return out
    refs = self.references(curves, epoch)
    if len(refs) < self.min_trials:
      return out
    median, leader = float(np.median(refs)), float(np.max(refs))
    for i in np.flatnonzero(alive):
      if np.isfinite(best[i]) and best[i] < median and best[i] < leader:
        out[i] = True
    return out


def make_pruner(
    rule: str, finished_trials: list[Trial], grace_epochs: int = 2, min_trials: int = 4
) -> Callable | None:
  """The engine's `prune(epoch, best, alive)` for a bucket, from the study's finished trials."""
  if rule == "none":
    return None
  if rule != "median":
    raise ValueError(f"early_stop={rule!r}: not one of {', '.join(RULES)}")
  curves = [t.curve or [] for t in finished_trials if t.status not in SCORELESS]
  median = MedianRule(grace_epochs=grace_epochs, min_trials=min_trials)
  return lambda epoch, best, alive: median.stop(epoch, best, alive, curves)
