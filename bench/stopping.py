"""Early-stopping rules replayed on committed trials: what each would save, and whom it stops.

  python bench/stopping.py                                  # the published experiment
  python bench/stopping.py --db=runs/experiment-cpu/experiment.sqlite

Every trial of every study is replayed in the order it ran, against the
trials its study had finished before its bucket (what the study loop hands
the rule), epoch by epoch along its stored validation curve. For each rule
(search/pruning.py) it counts the lanes it stops, the lane-epochs it would
have saved against what the lanes actually trained, the lanes it stops that
were at or above their study's eventual best trial at the same epoch (a
winner stopped), and the lanes that ended within 2% of their study's best
that it would have stopped. A lane that the recorded run stopped and the
rule would not have is counted as "kept": its continuation is unknown, so the
lane-epochs it would cost are given as an upper bound. Reads the file only
(a gzipped state is unpacked to a temporary copy). Prints one line per rule.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_string(
    "db",
    "docs/results/experiment-cpu/experiment.sqlite.gz",
    "The experiment's state (SQLite, or gzipped SQLite).",
)
FLAGS = flags.FLAGS
NEAR_BEST = 0.98


def best_upto(curve: list[dict], epoch: int) -> float | None:
  """A trial's best NDCG@10 up to `epoch`, as the rules read their references."""
  from vmle_jax.search.pruning import MedianRule

  seen = MedianRule().references([curve or []], epoch)
  return float(seen[0]) if len(seen) else None


def replay(rule: str, trials: list, cap: int, grace: int) -> dict:
  """One study's trials under `rule`: per trial the epoch it would stop at (None: not)."""
  import numpy as np

  from vmle_jax.memory.records import SCORELESS, best_trial
  from vmle_jax.search.pruning import make_pruner

  out = {}
  scored = [t for t in trials if t.status not in SCORELESS and t.value is not None]
  final = best_trial(scored)
  for t in trials:
    if t.status in SCORELESS:
      continue
    before = [u for u in trials if u.bucket < t.bucket]
    prune = make_pruner(rule, before, grace_epochs=grace)
    stop = None
    for epoch in range(1, min(t.epochs or 0, cap - 1) + 1):
      best = best_upto(t.curve, epoch)
      if best is None:
        continue
      if prune is not None and prune(epoch, np.array([best]), np.array([True]))[0]:
        stop = epoch
        break
    ahead = (
        stop is not None
        and final is not None
        and final.id != t.id
        and best_upto(final.curve, stop) is not None
        and best_upto(t.curve, stop) >= best_upto(final.curve, stop)
    )
    near = final is not None and t.value is not None and t.value >= NEAR_BEST * final.value
    out[t.id] = {"stop": stop, "ahead": ahead, "near_best": near, "trial": t}
  return out


def main(argv):
  _common.start(argv)
  with _common.published_state(FLAGS.db) as store:
    report(store)


def report(store) -> None:
  """One line per rule that stops lanes (see the module docstring)."""
  from vmle_jax.search.pruning import RULES

  for rule in [name for name in RULES if name != "none"]:
    row = dict(lanes=0, stopped=0, ahead=0, near_best_stopped=0, saved=0, kept=0, kept_bound=0)
    row["epochs"] = 0
    for study in store.studies():
      if study["settings"].get("early_stop") != "median":
        continue  # only studies that ran a stopping rule have comparable lane-epochs
      cap = int(study["settings"]["schedule"]["max_epochs"])
      grace = max(2, cap // 4)
      trials = store.finished_trials(study["id"])
      for r in replay(rule, trials, cap, grace).values():
        t = r["trial"]
        row["lanes"] += 1
        row["epochs"] += t.epochs or 0
        if r["stop"] is not None:
          row["stopped"] += 1
          row["ahead"] += r["ahead"]
          row["near_best_stopped"] += r["near_best"]
          row["saved"] += max(0, (t.epochs or 0) - r["stop"])
        elif t.status == "pruned":
          row["kept"] += 1
          row["kept_bound"] += cap - (t.epochs or 0)
    print(
        f"stopping {rule}: {row['lanes']} lanes replayed ({row['epochs']} lane-epochs trained); "
        f"stops {row['stopped']}, of which {row['ahead']} were at or above their study's "
        f"eventual best at that epoch and {row['near_best_stopped']} ended within "
        f"{1 - NEAR_BEST:.0%} of it; {row['saved']} lane-epochs saved against the run; "
        f"{row['kept']} lanes the run stopped are kept (at most {row['kept_bound']} more "
        f"lane-epochs); {FLAGS.db}; {_common.machine()}; {_common.today()}"
    )


if __name__ == "__main__":
  app.run(main)
