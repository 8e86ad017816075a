"""How well the cost model orders configurations: its estimate against measured seconds.

  python bench/cost_model.py                                  # the published experiment
  python bench/cost_model.py --db=runs/experiment-cpu-minutes/experiment.sqlite

For every bucket of every study in a state file, the estimate of one
lane-epoch (search/cost.py: work plus the fixed time of an epoch, averaged
over the bucket's lanes by the epochs they trained) is set against the
bucket's measured seconds per lane-epoch. Prints one line per data set: the
rank correlation (the planner only uses the estimate to order proposals) and
the spread of measured/estimated around its median. The measured seconds
include compilation and, for runs that shared the cores, other work, so the
spread is an upper bound on the model's error.
"""

from __future__ import annotations

import json
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


def _ranks(x):
  import numpy as np

  return np.argsort(np.argsort(x)).astype(float)


def main(argv):
  _common.start(argv)
  with _common.published_state(FLAGS.db) as store:
    report(store)


def report(store) -> None:
  """One line per data set (see the module docstring)."""
  import numpy as np

  from vmle_jax.search.cost import OVERHEAD_PER_USER, lane_epoch_flops

  stats = {
      r["id"]: (r["name"], json.loads(r["stats"]))
      for r in store.conn.execute("SELECT id, name, stats FROM datasets")
  }
  points: dict = {}
  for study in store.studies():
    name, st = stats[study["dataset_id"]]
    buckets: dict = {}
    for t in store.finished_trials(study["id"]):
      if (t.epochs or 0) > 0 and t.bucket_seconds:
        buckets.setdefault(t.bucket, []).append(t)
    for ts in buckets.values():
      epochs = sum(t.epochs for t in ts)
      work = sum(
          (lane_epoch_flops(t.config, st) + OVERHEAD_PER_USER * int(st.get("users") or 1))
          * t.epochs
          for t in ts
      )
      points.setdefault(name, []).append((work / epochs, ts[0].bucket_seconds / epochs))
  for name, pts in sorted(points.items()):
    est, sec = np.array(pts).T
    rho = float(np.corrcoef(_ranks(est), _ranks(sec))[0, 1]) if len(pts) > 2 else float("nan")
    ratio = sec / est
    q = np.quantile(ratio / np.median(ratio), [0.1, 0.9])
    print(
        f"cost model on {name}: {len(pts)} buckets, rank correlation {rho:.2f} between the "
        f"estimate and measured seconds per lane-epoch; measured/estimated within "
        f"{q[0]:.2f}-{q[1]:.2f}x of its median for 80% of buckets; {FLAGS.db}; "
        f"{_common.machine()}; {_common.today()}"
    )


if __name__ == "__main__":
  app.run(main)
