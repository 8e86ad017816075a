"""Stopping losers early: a rule that freezes a lane that cannot catch up with the study.

The median stopping rule (Golovin et al., "Google Vizier", KDD 2017): after
a grace period, a running trial whose best validation NDCG@10 so far is
below the median of the study's finished trials' best values *at the same
epoch* is stopped. It needs no model of the curves, applies to every
strategy alike (the study loop builds it from the store, whatever proposed
the trials), and never stops a lane that leads: a lane at or above every
finished trial's value at that epoch is always kept.

The study loop sets the grace period to a quarter of the epoch cap (at least
2 epochs), so slow starters get a fair look on long schedules.

`median-guarded` is the same rule with two changes read off the committed
experiment (docs/results/experiment-cpu, 748 lanes as `python
bench/stopping.py` replays them; docs/results/early-stopping/README.md):

- **a guard for lanes on the leader's track**: a lane at or above the study's
  best finished trial at the same epoch is never stopped. The plain rule
  compares with the fastest starters, so it had stopped 6 lanes that were
  ahead of their study's eventual best at the epoch it stopped them (the best
  was a slow starter whose own first epochs were never judged);
- **an early cut for lanes far behind**: from the first epoch, a lane below
  `FAR` (half) of the median is stopped. No lane that ended within 2% of its
  study's best was below 0.68 of the median at its first epoch, so the cut
  leaves a margin and spends one epoch, not the whole grace period, on lanes
  that are hopeless from the start.

The engine
calls the rule after each validation; a pruned lane keeps its
best metrics so far (status `pruned`) and stops costing compute once the
bucket is compacted.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from vmle_jax.memory.records import SCORELESS, Trial, best_trial

FAR = 0.5  # median-guarded: a lane below this fraction of the median is stopped at once


@dataclasses.dataclass(frozen=True)
class MedianRule:
  """Stop a lane below the median of finished trials at the same epoch.

  Its variants are parameterisations (optuna's `MedianPruner(PercentilePruner)`): with `far`
  set, the rule is guarded, i.e. it also stops a lane below `far` times the median from the
  first epoch and never stops one at or above the study best's curve (`leader_curve`)."""

  grace_epochs: int = 2  # never stop before this many epochs (unless far behind)
  min_trials: int = 4  # finished trials needed before the rule acts
  far: float | None = None  # stop from the first epoch below this fraction of the median
  leader_curve: tuple = ()  # the best finished trial's curve: lanes on its track are kept

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
    if epoch < self.grace_epochs and self.far is None:
      return out
    refs = self.references(curves, epoch)
    if len(refs) < self.min_trials:
      return out
    median, leader = float(np.median(refs)), float(np.max(refs))
    track = self.references([list(self.leader_curve)], epoch)
    on_track = float(track[0]) if len(track) else np.inf
    guarded = self.far is not None
    for i in np.flatnonzero(alive):
      if not np.isfinite(best[i]) or best[i] >= leader or (guarded and best[i] >= on_track):
        continue  # it leads, or it is on the study best's track
      if guarded and best[i] < self.far * median:
        out[i] = True  # far behind: no grace period
      elif epoch >= self.grace_epochs and best[i] < median:
        out[i] = True
    return out

  def for_study(self, finished_trials: list[Trial]) -> Callable:
    """The engine's `prune(epoch, best, alive)` against a study's finished trials (a guarded
    rule keeps the lanes on the track of the best of them)."""
    scored = [t for t in finished_trials if t.status not in SCORELESS]
    curves = [t.curve or [] for t in scored]
    rule = self
    if self.far is not None:
      leader = best_trial(scored)
      rule = dataclasses.replace(self, leader_curve=tuple(leader.curve or []) if leader else ())
    return lambda epoch, best, alive: rule.stop(epoch, best, alive, curves)


@dataclasses.dataclass(frozen=True)
class StoppingRule:
  """A registered early-stopping rule: how to build it, and its line in --early_stop's help."""

  build: Callable[[int, int], MedianRule | None]  # (grace_epochs, min_trials); None: never stops
  help: str


# Every early-stopping rule, by the name --early_stop and the studies' settings use. A new rule
# is one entry here (plus its class if it is not a MedianRule); launchers and bench/ read the keys.
RULES: dict[str, StoppingRule] = {
    "none": StoppingRule(lambda grace, min_trials: None, "never stops a lane early"),
    "median": StoppingRule(
        lambda grace, min_trials: MedianRule(grace, min_trials),
        "stops a trial whose best validation NDCG@10 is below the median of the study's "
        "finished trials at the same epoch (after a quarter of --epochs, at least 2, once 4 "
        "trials have finished)",
    ),
    "median-guarded": StoppingRule(
        lambda grace, min_trials: MedianRule(grace, min_trials, far=FAR),
        "also stops a lane below half the median from the first epoch and never stops one on "
        "the study best's track",
    ),
}


def make_pruner(
    rule: str, finished_trials: list[Trial], grace_epochs: int = 2, min_trials: int = 4
) -> Callable | None:
  """The engine's `prune(epoch, best, alive)` for a bucket, from the study's finished trials."""
  if rule not in RULES:
    raise ValueError(f"early_stop={rule!r}: not one of {', '.join(RULES)}")
  median = RULES[rule].build(grace_epochs, min_trials)
  return None if median is None else median.for_study(finished_trials)
