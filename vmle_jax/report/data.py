"""The numbers of a comparison, read from the trial store and nothing else.

A comparison group is the set of studies whose settings carry the same
`group` (one data set x backbone, several strategies x seeds). For each study
the trials are taken in execution order; training and planner time are summed
into a study clock, so best-so-far curves can be drawn against trials and
against wall-clock minutes.

When a trial's result exists depends on how its bucket's lanes ran:
- **lanes in series** (one after another: `lane_execution=serial`, or `auto` on
  one CPU device): at the trial's own finish. The loop records each lane's own
  seconds; for trials recorded before that, the bucket's time is shared out in
  proportion to the epochs each lane trained (lanes of a bucket share one
  structure, so an epoch costs the same in each);
- **vmapped lanes** (they finish together): at the end of the trial's batch.
Each trial's bucket records which (`lane_execution` in its proposal); older
trials go by their study's setting (`auto` read as in series, as it runs on one
CPU device, where every committed study ran; no setting: vmapped, as lanes ran
before they could run in series). Minutes and lane-epochs "at the budget" count
trials by that rule; trial counts ("trials to target") always count at batch
ends, where a strategy hears its results.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np

from vmle_jax.memory.records import Trial, best_trial
from vmle_jax.memory.store import Store


@dataclasses.dataclass
class StudyRun:
  """One study's trajectory: values per trial, when each trial's result existed, its best.

  Trials of one batch are proposed together, and the strategy hears their results when
  the batch ends, so trial counts step at batch ends: reaching the target in the first
  trial of a 4-trial batch costs 4 trials, not 1. Time and lane-epochs count each trial
  when its result existed (`ends`, `in_series`; see the module docstring).
  """

  name: str
  strategy: str
  seed: int
  values: list[float | None]  # validation NDCG@10 per trial (None: diverged or failed)
  ends: list[float]  # seconds since the study started when each trial's result existed
  steps: int
  best_valid: dict | None
  best_test: dict | None
  batches: list[int] = dataclasses.field(default_factory=list)  # batch of each trial (1-based)
  epochs: list[int] = dataclasses.field(default_factory=list)  # epochs each trial trained
  budget: int | None = None  # the study's trial budget (with a compute budget: its cap)
  planner_seconds: float = 0.0
  budget_minutes: float | None = None
  budget_lane_epochs: int | None = None
  # Per trial: its lanes ran in series, so it counts at its own finish (empty: none did).
  in_series: list[bool] = dataclasses.field(default_factory=list)
  stop_reason: str | None = None  # why the study stopped proposing, as its loop recorded it
  batch_ends: list[float] = dataclasses.field(default_factory=list)  # seconds, per batch
  charged_seconds: float = 0.0  # start-up, bookkeeping, killed buckets (in `ends` too)

  def overran(self) -> int:
    """Batches that ended past the minutes budget (their late results do not count)."""
    if self.budget_minutes is None:
      return 0
    return sum(1 for e in self.batch_ends if e > 60 * self.budget_minutes + 1e-6)

  @property
  def seconds(self) -> float:
    return max(self.ends) if self.ends else 0.0

  @property
  def counted_at(self) -> str:
    """'own finish' (lanes in series), 'batch end' (vmapped) or 'mixed'."""
    series = set(self.in_series or [False])
    return "mixed" if len(series) > 1 else "own finish" if True in series else "batch end"

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

  def first_reach(self, target: float) -> int | None:
    """Index of the first trial whose value reaches target (time counts from its `ends`)."""
    return next((i for i, b in enumerate(self.best_so_far()) if b >= target), None)

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
    """Seconds until a trial reaching the target existed (its own finish or its batch's end)."""
    i = self.first_reach(target)
    return None if i is None else self.ends[i]

  def lane_epoch_ends(self) -> list[int]:
    """Lane-epochs spent when each trial's result existed: the trials before it and its own
    for lanes in series, the whole batch for vmapped lanes."""
    batches = self.batches or list(range(len(self.epochs)))
    total: dict = {}
    for b, e in zip(batches, self.epochs):
      total[b] = total.get(b, 0) + e
    out, spent, start, within = [], 0, {}, {}
    for i, (b, e) in enumerate(zip(batches, self.epochs)):
      if b not in start:
        start[b], within[b] = spent, 0
        spent += total[b]
      within[b] += e
      series = self.in_series[i] if self.in_series else False
      out.append(start[b] + (within[b] if series else total[b]))
    return out

  def best_within(self, seconds: float | None = None, lane_epochs: float | None = None):
    """Best value among the trials whose results existed within the given minutes' seconds
    and lane-epochs (None when none did): what the study had found at that budget."""
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


def clock_rules(runs: list[StudyRun]) -> dict[str, int]:
  """How many of `runs` each clock rule placed in time ('own finish', 'batch end', 'mixed'),
  in the order the rules first appear."""
  return dict(collections.Counter(r.counted_at for r in runs))


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


def lanes_in_series(study: dict, trial: Trial) -> tuple[bool, bool]:
  """(whether the trial's lanes ran one after another, whether its own seconds were recorded):
  what its bucket recorded, else its study's setting (module docstring)."""
  recorded = (trial.proposal or {}).get("lane_execution")
  if recorded is not None:
    return recorded == "serial", True
  setting = (study["settings"].get("schedule") or {}).get("lane_execution")
  return setting in ("serial", "auto"), False


def charges_before(study: dict) -> dict:
  """Seconds the loop charged before each batch (start-up, bookkeeping, killed buckets)."""
  out: dict = {}
  for c in (study.get("settings") or {}).get("charges") or []:
    out[c.get("before_batch")] = out.get(c.get("before_batch"), 0.0) + (c.get("seconds") or 0.0)
  return out


def trial_ends(study: dict, trials: list[Trial]) -> tuple[list[float], list[bool]]:
  """(seconds since the study started when each trial's result existed, whether it counts at
  its own finish). The clock adds what the loop charged before each batch (start-up,
  bookkeeping, a killed bucket), each batch's planner time (proposing and reflecting) and
  each bucket's training time."""
  elapsed, batch_of, span, planner = 0.0, [], {}, {}
  charged = charges_before(study)
  for t in trials:
    batch = t.batch if t.batch is not None else t.bucket
    if batch not in planner:
      planner[batch] = t.planner_seconds or 0.0
      elapsed += planner[batch] + (charged.get(batch, 0.0) if t.batch is not None else 0.0)
    if t.bucket not in span:
      span[t.bucket] = (elapsed, t.bucket_seconds or 0.0)
      elapsed += t.bucket_seconds or 0.0
    batch_of.append(batch)
  batch_end: dict = {}
  for t, b in zip(trials, batch_of):
    batch_end[b] = max(batch_end.get(b, 0.0), sum(span[t.bucket]))
  # Lanes in series: the bucket's time shared out in lane order by each lane's own seconds
  # (recorded) or epochs (older trials), so the last lane ends with the bucket.
  weights: dict = {}
  series = []
  for t in trials:
    in_series, own = lanes_in_series(study, t)
    series.append(in_series)
    weights.setdefault(t.bucket, []).append(float((t.seconds if own else t.epochs) or 0.0))
  ends, done = [], {}
  for t, b, in_series in zip(trials, batch_of, series):
    if not in_series:
      ends.append(batch_end[b])
      continue
    start, length = span[t.bucket]
    w = weights[t.bucket]
    done[t.bucket] = done.get(t.bucket, 0) + 1
    share = sum(w[: done[t.bucket]]) / sum(w) if sum(w) > 0 else 1.0
    ends.append(start + length * share)
  return ends, series


def study_run(study: dict, trials: list[Trial]) -> StudyRun:
  """A study's trajectory from its finished trials (in execution order)."""
  ends, series = trial_ends(study, trials)
  batch_of = [t.batch if t.batch is not None else t.bucket for t in trials]
  planner: dict = {}
  for t, b in zip(trials, batch_of):
    planner.setdefault(b, t.planner_seconds or 0.0)
  best = best_trial(trials)
  numbering = {b: i + 1 for i, b in enumerate(dict.fromkeys(batch_of))}
  batch_end: dict = {}
  for e, b in zip(ends, batch_of):
    batch_end[b] = max(batch_end.get(b, 0.0), e)
  return StudyRun(
      name=study["name"],
      strategy=study["strategy"],
      seed=int(study["settings"].get("seed", 0)),
      values=[t.value for t in trials],
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
      in_series=series,
      stop_reason=study["settings"].get("stop_reason"),
      batch_ends=list(batch_end.values()),
      charged_seconds=float(sum(charges_before(study).values())),
  )


def runs_of(runs: list[StudyRun], strategy: str) -> list[StudyRun]:
  return [r for r in runs if r.strategy == strategy]


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


# A minutes budget over this many times the longest study's minutes never bound (e.g.
# --budget_minutes=1e9 to let the trial cap decide): it is reported as no minutes cap, and a
# seed that never reached the target counts as what it spent plus one, not as the budget.
NO_CAP = 10.0


def minutes_cap(runs: list[StudyRun], minutes: float | None) -> float | None:
  """The minutes budget if it was in effect; None without one or when no study came near."""
  longest = max((r.seconds for r in runs), default=0.0) / 60
  return None if minutes is None or minutes > NO_CAP * max(longest, 1.0) else minutes


def equal_budget_table(
    runs: list[StudyRun], minutes: float | None, lane_epochs: int | None
) -> dict:
  """Per strategy, what it had found when the shared compute budget ran out (a trial whose
  result came past it does not count) and its minutes and lane-epochs to the target, 98% of
  the best any study found within the budget. A seed that never reached it counts as the
  budget plus one (minute, lane-epoch), or as what it spent plus one where that quantity has
  no budget (or a minutes budget no study came near), so a strategy that stops early without
  reaching the target does not look fast."""
  seconds = None if minutes is None else 60 * minutes
  cap = minutes_cap(runs, minutes)
  at = {r.name: r.best_within(seconds, lane_epochs) for r in runs}
  found = [v for v in at.values() if v is not None]
  target = 0.98 * max(found) if found else None  # of what was found within the budget

  epoch_ends = {r.name: r.lane_epoch_ends() for r in runs}

  def within(r, i):
    return (seconds is None or r.ends[i] <= seconds + 1e-6) and (
        lane_epochs is None or epoch_ends[r.name][i] <= lane_epochs
    )

  def spent(r) -> tuple[float, int]:
    """(minutes, lane-epochs) when the last result within the budget existed."""
    kept = [i for i in range(len(r.values)) if within(r, i)]
    if not kept:
      return 0.0, 0
    return r.ends[kept[-1]] / 60, epoch_ends[r.name][kept[-1]]

  def hit(r, value) -> int | None:
    """The first trial that reached `value` within the budget."""
    i = None if value is None else r.first_reach(value)
    return None if i is None or not within(r, i) else i

  def minutes_to(r, value):
    i = hit(r, value)
    return None if i is None else r.ends[i] / 60

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
    hits = [hit(r, target) for r in rs]
    to_min = [None if i is None else r.ends[i] / 60 for r, i in zip(rs, hits)]
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
            censored(to_min, [cap if cap is not None else m for m, _ in used])
        ),
        "minutes_to_target_per_seed": {r.seed: m for r, m in zip(rs, to_min)},
        "lane_epochs_to_target": _mean(
            censored(to_epochs, [lane_epochs if lane_epochs is not None else e for _, e in used])
        ),
        "reached": sum(1 for x in to_min if x is not None),
    }
  return {
      "stops": {r.name: r.stop_reason for r in runs},
      "overran": {
          s: [sum(r.overran() for r in runs if r.strategy == s), len(runs_of(runs, s))]
          for s in strategies
      },
      "minutes": minutes,
      "minutes_cap": cap,
      "longest_minutes": max((r.seconds for r in runs), default=0.0) / 60,
      "lane_epochs": lane_epochs,
      "target": target,
      "strategies": rows,
      "minutes_to_best_of": to_best_of,
      "counted_at": clock_rules(runs),
  }
