"""The numbers of a comparison, read from the trial store and nothing else.

A comparison group is the set of studies whose settings carry the same
`group` (one data set x backbone, several strategies x seeds). For each study
the trials are taken in execution order; a trial's time is the end of its
batch (training and planner time summed), so best-so-far curves can be drawn
against trials and against wall-clock seconds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from vmle_jax.memory.records import Trial, best_trial
from vmle_jax.memory.store import Store


@dataclasses.dataclass
class StudyRun:
  """One study's trajectory: values per trial, when each trial's batch ended, its best config.

  Trials of one batch are proposed together and finish together (the lanes of
  its buckets), so progress is counted at batch ends: reaching the target in
  the first trial of a 4-trial batch costs 4 trials, not 1.
  """

  name: str
  strategy: str
  seed: int
  values: list[float | None]  # validation NDCG@10 per trial (None: diverged or failed)
  ends: list[float]  # seconds since the study started when each trial's batch ended
  steps: int
  best_valid: dict | None
  best_test: dict | None
  batches: list[int] = dataclasses.field(default_factory=list)  # batch of each trial (1-based)
  epochs: list[int] = dataclasses.field(default_factory=list)  # epochs each trial trained
  budget: int | None = None  # the study's trial budget (with a compute budget: its cap)
  planner_seconds: float = 0.0
  budget_minutes: float | None = None
  budget_lane_epochs: int | None = None

  @property
  def seconds(self) -> float:
    return self.ends[-1] if self.ends else 0.0

  @property
  def lane_epochs(self) -> int:
    return int(sum(self.epochs))

  def best_so_far(self) -> list[float]:
    out, best = [], -math.inf
    for v in self.values:
      best = max(best, v if v is not None else -math.inf)
      out.append(best)
    return out

  def best_at_batch_ends(self) -> list[float]:
    """Best value known after each trial, counted as the tables count it: a batch's trials
    finish together, so its results appear at its last trial (a step per batch)."""
    bsf, out, known = self.best_so_far(), [], -math.inf
    for i in range(len(self.values)):
      batch = self.batches[i] if self.batches else i
      if i + 1 == len(self.values) or (self.batches[i + 1] if self.batches else i + 1) != batch:
        known = bsf[i]
      out.append(known)
    return out

  def reach_index(self, target: float) -> int | None:
    """Index of the last trial of the batch in which the best-so-far first reaches target."""
    for i, b in enumerate(self.best_so_far()):
      if b >= target:
        batch = self.batches[i] if self.batches else i
        last = i
        while (
            last + 1 < len(self.values)
            and (self.batches[last + 1] if self.batches else last + 1) == batch
        ):
          last += 1
        return last
    return None

  def trials_to(self, target: float) -> int | None:
    """Trials run when the target was first reached (counted at the end of its batch)."""
    i = self.reach_index(target)
    return None if i is None else i + 1

  def batches_to(self, target: float) -> int | None:
    i = self.reach_index(target)
    if i is None:
      return None
    return len(dict.fromkeys(self.batches[: i + 1])) if self.batches else i + 1

  def lane_epochs_to(self, target: float) -> int | None:
    i = self.reach_index(target)
    return None if i is None else int(sum(self.epochs[: i + 1]))

  def seconds_to(self, target: float) -> float | None:
    i = self.reach_index(target)
    return None if i is None else self.ends[i]

  def lane_epoch_ends(self) -> list[int]:
    """Lane-epochs spent when each trial's batch ended."""
    out, spent, batch_total = [], 0, {}
    for b, e in zip(self.batches or range(len(self.epochs)), self.epochs):
      batch_total[b] = batch_total.get(b, 0) + e
    seen = {}
    for b in self.batches or range(len(self.epochs)):
      if b not in seen:
        spent += batch_total[b]
        seen[b] = spent
      out.append(seen[b])
    return out

  def best_within(self, seconds: float | None = None, lane_epochs: float | None = None):
    """Best value among the trials whose batch ended within the given minutes' seconds and
    lane-epochs (None when none did): what the study had found at that budget."""
    ends_e = self.lane_epoch_ends()
    got = [
        v
        for v, s, e in zip(self.values, self.ends, ends_e)
        if v is not None
        and (seconds is None or s <= seconds + 1e-6)
        and (lane_epochs is None or e <= lane_epochs)
    ]
    return max(got) if got else None

  def num_batches(self) -> int:
    return len(set(self.batches)) if self.batches else len(self.values)


def load_group(store: Store, group: str) -> list[StudyRun]:
  """Every study of a comparison group that has finished trials, in execution order."""
  runs = []
  for study in store.studies():
    if study["settings"].get("group") != group:
      continue
    trials = store.finished_trials(study["id"])
    if not trials:  # started and interrupted before its first bucket ended: nothing to report
      continue
    runs.append(study_run(study, trials))
  return runs


def study_run(study: dict, trials: list[Trial]) -> StudyRun:
  """A study's trajectory from its finished trials (in execution order).

  Wall-clock adds each bucket's training time and each batch's planner time
  (proposing and reflecting); a trial ends when its batch does."""
  values, batch_of, bucket_end, elapsed = [], [], {}, 0.0
  planner: dict = {}
  for t in trials:
    batch = t.batch if t.batch is not None else t.bucket
    if batch not in planner:
      planner[batch] = t.planner_seconds or 0.0
      elapsed += planner[batch]
    if t.bucket not in bucket_end:
      elapsed += t.bucket_seconds or 0.0
      bucket_end[t.bucket] = elapsed
    batch_of.append(batch)
    values.append(t.value)
  batch_end = {}
  for t, b in zip(trials, batch_of):
    batch_end[b] = max(batch_end.get(b, 0.0), bucket_end[t.bucket])
  ends = [batch_end[b] for b in batch_of]
  best = best_trial(trials)
  numbering = {b: i + 1 for i, b in enumerate(dict.fromkeys(batch_of))}
  return StudyRun(
      name=study["name"],
      strategy=study["strategy"],
      seed=int(study["settings"].get("seed", 0)),
      values=values,
      ends=ends,
      steps=int(sum(t.steps or 0 for t in trials)),
      best_valid=best.valid if best else None,
      best_test=best.test if best else None,
      batches=[numbering[b] for b in batch_of],
      epochs=[int(t.epochs or 0) for t in trials],
      budget=(study.get("budget") or {}).get("trials"),
      planner_seconds=float(sum(planner.values())),
      budget_minutes=(study.get("budget") or {}).get("minutes"),
      budget_lane_epochs=(study.get("budget") or {}).get("lane_epochs"),
  )


def _mean(xs):
  xs = [x for x in xs if x is not None]
  return float(np.mean(xs)) if xs else None


def _std(xs):
  xs = [x for x in xs if x is not None]
  return float(np.std(xs)) if len(xs) > 1 else 0.0 if xs else None


def censored(values: list, limits: list) -> list:
  """Values with a run that never reached the target counted as its limit plus one."""
  return [
      v if v is not None else (lim + 1 if lim is not None else None)
      for v, lim in zip(values, limits)
  ]


def comparison_table(runs: list[StudyRun], target_fraction: float = 0.98) -> dict:
  """Per strategy: best validation/test metrics, trials, batches and lane-epochs to target.

  "To target" counts every seed: one that never reaches the target counts as
  its budget plus one (trials, batches, lane-epochs of the whole study plus
  one), so a strategy cannot look fast by averaging only its lucky seeds;
  `reached` says how many seeds got there.
  """
  finished = [r for r in runs if r.best_valid]
  best_any = max((r.best_valid["NDCG@10"] for r in finished), default=None)
  target = None if best_any is None else target_fraction * best_any
  rows = {}
  for strategy in sorted({r.strategy for r in runs}):
    rs = [r for r in runs if r.strategy == strategy]
    t = target if target is not None else math.inf
    trials = [r.trials_to(t) for r in rs]
    # Under a compute budget the trial count is a cap that never binds: censor at what ran.
    budgets = [
        len(r.values) if r.budget_minutes or r.budget_lane_epochs else r.budget or len(r.values)
        for r in rs
    ]
    batches = [r.batches_to(t) for r in rs]
    epochs = [r.lane_epochs_to(t) for r in rs]
    seconds = sum(r.seconds for r in rs)
    trial_counts = censored(trials, budgets)
    batch_counts = censored(batches, [r.num_batches() for r in rs])
    epoch_counts = censored(epochs, [r.lane_epochs for r in rs])
    valid = [r.best_valid["NDCG@10"] if r.best_valid else None for r in rs]
    test = [(r.best_test or {}).get("NDCG@10") for r in rs]
    rows[strategy] = {
        "seeds": len(rs),
        "trials": sum(len(r.values) for r in rs),
        "best_valid_ndcg10": _mean(valid),
        "best_valid_ndcg10_std": _std(valid),
        "test_ndcg10": _mean(test),
        "test_ndcg10_std": _std(test),
        "test_hr10": _mean([(r.best_test or {}).get("HR@10") for r in rs]),
        "trials_to_target": _mean(trial_counts),
        "trials_to_target_std": _std(trial_counts),
        "trials_to_target_median": float(np.median(trial_counts)) if trial_counts else None,
        "batches_to_target": _mean(batch_counts),
        "lane_epochs_to_target": _mean(epoch_counts),
        "reached": sum(1 for x in trials if x is not None),
        "minutes_to_target": _mean(
            [None if r.seconds_to(t) is None else r.seconds_to(t) / 60 for r in rs]
        ),
        "lane_epochs": _mean([r.lane_epochs for r in rs]),
        "planner_minutes": _mean([r.planner_seconds / 60 for r in rs]),
        "trials_per_hour": (sum(len(r.values) for r in rs) / (seconds / 3600)) if seconds else None,
        "config_steps_per_s": (sum(r.steps for r in rs) / seconds) if seconds else None,
        "minutes": seconds / 60,
    }
  out = {
      "target_fraction": target_fraction,
      "best_any": best_any,
      "target": target,
      "strategies": rows,
  }
  minutes = max((r.budget_minutes or 0 for r in runs), default=0) or None
  epochs = max((r.budget_lane_epochs or 0 for r in runs), default=0) or None
  if minutes or epochs:
    out["equal_budget"] = equal_budget_table(runs, minutes, epochs)
  return out


def equal_budget_table(
    runs: list[StudyRun], minutes: float | None, lane_epochs: int | None
) -> dict:
  """Per strategy, what it had found when the shared compute budget ran out (a batch that
  ended past it does not count) and its minutes and lane-epochs to the target, 98% of the
  best any study found within the budget. A seed that never reached it counts as the budget
  plus one (minute, lane-epoch), or as what it spent plus one where that quantity has no
  budget, so a strategy that stops early without reaching the target does not look fast."""
  seconds = None if minutes is None else 60 * minutes
  at = {r.name: r.best_within(seconds, lane_epochs) for r in runs}
  found = [v for v in at.values() if v is not None]
  target = 0.98 * max(found) if found else None  # of what was found within the budget

  epoch_ends = {r.name: r.lane_epoch_ends() for r in runs}

  def within(r, i):
    return (seconds is None or r.ends[i] <= seconds + 1e-6) and (
        lane_epochs is None or epoch_ends[r.name][i] <= lane_epochs
    )

  def spent(r) -> tuple[float, int]:
    """(minutes, lane-epochs) of the batches that ended within the budget."""
    kept = [i for i in range(len(r.values)) if within(r, i)]
    if not kept:
      return 0.0, 0
    return r.ends[kept[-1]] / 60, epoch_ends[r.name][kept[-1]]

  def minutes_to(r, value):
    i = r.reach_index(value)
    return None if i is None or not within(r, i) else r.ends[i] / 60

  strategies = sorted({r.strategy for r in runs})
  # Per rival, per strategy, seed by seed: minutes until the study first matched the rival's
  # best at the budget on the same seed (None: never within it). Read beside the shared target,
  # which one lucky seed can set out of every other study's reach.
  to_best_of = {
      o: {
          s: {
              r.seed: minutes_to(r, at[rival.name])
              for r in runs
              if r.strategy == s
              for rival in runs
              if rival.strategy == o and rival.seed == r.seed and at[rival.name] is not None
          }
          for s in strategies
      }
      for o in strategies
  }

  rows = {}
  for strategy in strategies:
    rs = sorted((r for r in runs if r.strategy == strategy), key=lambda r: r.seed)
    best = [at[r.name] for r in rs]
    used = [spent(r) for r in rs]
    hits = [r.reach_index(target) if target is not None else None for r in rs]
    hits = [i if i is not None and within(r, i) else None for r, i in zip(rs, hits)]
    to_min = [None if i is None else r.ends[i] for r, i in zip(rs, hits)]
    to_epochs = [None if i is None else epoch_ends[r.name][i] for r, i in zip(rs, hits)]
    rows[strategy] = {
        "seeds": len(rs),
        "best_at_budget": _mean(best),
        "best_at_budget_std": _std(best),
        "per_seed": {r.seed: at[r.name] for r in rs},
        "trials": _mean([len(r.values) for r in rs]),
        "minutes_used": _mean([m for m, _ in used]),
        "lane_epochs_used": _mean([e for _, e in used]),
        "minutes_to_target": _mean(
            censored(
                [None if s is None else s / 60 for s in to_min],
                [minutes if minutes is not None else m for m, _ in used],
            )
        ),
        "lane_epochs_to_target": _mean(
            censored(to_epochs, [lane_epochs if lane_epochs is not None else e for _, e in used])
        ),
        "reached": sum(1 for x in to_min if x is not None),
    }
  return {
      "minutes": minutes,
      "lane_epochs": lane_epochs,
      "target": target,
      "strategies": rows,
      "minutes_to_best_of": to_best_of,
  }
