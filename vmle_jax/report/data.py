"""The numbers of a comparison, read from the trial store and nothing else.

A comparison group is the set of studies whose settings carry the same
`group` (one data set x backbone, several strategies x seeds). For each study
the trials are taken in execution order; a trial's time is the end of its
bucket (buckets run one after another), so best-so-far curves can be drawn
against trials and against wall-clock seconds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from vmle_jax.memory.store import Store


@dataclasses.dataclass
class StudyRun:
  """One study's trajectory: values per trial, when each trial ended, its best config."""

  name: str
  strategy: str
  seed: int
  values: list[float | None]  # validation NDCG@10 per trial (None: diverged or failed)
  ends: list[float]  # seconds since the study started when each trial's bucket ended
  steps: int
  best_valid: dict | None
  best_test: dict | None

  @property
  def seconds(self) -> float:
    return self.ends[-1] if self.ends else 0.0

  def best_so_far(self) -> list[float]:
    out, best = [], -math.inf
    for v in self.values:
      best = max(best, v if v is not None else -math.inf)
      out.append(best)
    return out

  def trials_to(self, target: float) -> int | None:
    for i, b in enumerate(self.best_so_far(), 1):
      if b >= target:
        return i
    return None

  def seconds_to(self, target: float) -> float | None:
    n = self.trials_to(target)
    return None if n is None else self.ends[n - 1]


def load_group(store: Store, group: str) -> list[StudyRun]:
  """Every study of a comparison group that has finished trials, in execution order."""
  runs = []
  for study in store.studies():
    if study["settings"].get("group") != group:
      continue
    trials = store.finished_trials(study["id"])
    if not trials:  # started and interrupted before its first bucket ended: nothing to report
      continue
    values, ends, elapsed, seen = [], [], 0.0, {}
    for t in trials:
      if t["bucket"] not in seen:
        elapsed += t["bucket_seconds"] or 0.0
        seen[t["bucket"]] = elapsed
      ends.append(seen[t["bucket"]])
      v = (t.get("valid") or {}).get("NDCG@10")
      values.append(None if t["status"] in ("diverged", "failed") or v is None else float(v))
    scored = [t for t, v in zip(trials, values) if v is not None]
    best = max(scored, key=lambda t: t["valid"]["NDCG@10"]) if scored else None
    runs.append(StudyRun(name=study["name"], strategy=study["strategy"],
                         seed=int(study["settings"].get("seed", 0)), values=values, ends=ends,
                         steps=int(sum(t.get("steps") or 0 for t in trials)),
                         best_valid=best["valid"] if best else None,
                         best_test=best.get("test") if best else None))
  return runs


def _mean(xs):
  xs = [x for x in xs if x is not None]
  return float(np.mean(xs)) if xs else None


def _std(xs):
  xs = [x for x in xs if x is not None]
  return float(np.std(xs)) if len(xs) > 1 else 0.0 if xs else None


def comparison_table(runs: list[StudyRun], target_fraction: float = 0.98) -> dict:
  """Per strategy: best validation/test metrics, trials and minutes to target, throughput."""
  finished = [r for r in runs if r.best_valid]
  best_any = max((r.best_valid["NDCG@10"] for r in finished), default=None)
  target = None if best_any is None else target_fraction * best_any
  rows = {}
  for strategy in sorted({r.strategy for r in runs}):
    rs = [r for r in runs if r.strategy == strategy]
    reached = [r.trials_to(target) for r in rs] if target is not None else []
    seconds = sum(r.seconds for r in rs)
    rows[strategy] = {
        "seeds": len(rs),
        "trials": sum(len(r.values) for r in rs),
        "best_valid_ndcg10": _mean([r.best_valid["NDCG@10"] if r.best_valid else None for r in rs]),
        "best_valid_ndcg10_std": _std([r.best_valid["NDCG@10"] if r.best_valid else None
                                       for r in rs]),
        "test_ndcg10": _mean([(r.best_test or {}).get("NDCG@10") for r in rs]),
        "test_hr10": _mean([(r.best_test or {}).get("HR@10") for r in rs]),
        "trials_to_target": _mean(reached),
        "reached": sum(1 for x in reached if x is not None),
        "minutes_to_target": _mean([None if r.seconds_to(target) is None
                                    else r.seconds_to(target) / 60 for r in rs]),
        "trials_per_hour": (sum(len(r.values) for r in rs) / (seconds / 3600)) if seconds else None,
        "config_steps_per_s": (sum(r.steps for r in rs) / seconds) if seconds else None,
        "minutes": seconds / 60,
    }
  return {"target_fraction": target_fraction, "best_any": best_any, "target": target,
          "strategies": rows}
