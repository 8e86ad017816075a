"""Does memory stay flat over a long sweep of many structures?

A 64-trial random sweep (every trial drawn independently, so nearly every
bucket is a new static signature, i.e. a new compiled program) of tiny
SASRec models on the synthetic data. Records the resident set size after
each bucket; the engine keeps at most --max_programs compiled programs (least
recently used first out). Passes when the growth over the last quarter of
the buckets is under 10% of the RSS after the first bucket.

  python bench/memory_soak.py [--trials=64] [--max_programs=8]

Prints one line.
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_integer("trials", 64, "Trials in the sweep (one bucket each, mostly).")
flags.DEFINE_integer("max_programs", 8, "Compiled programs the engine keeps.")
flags.DEFINE_integer("epochs", 1, "Epochs per trial.")
FLAGS = flags.FLAGS


def rss_mb() -> float:
  """This process's resident set size (VmRSS) in MB."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def peak_mb() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def main(argv):
  _common.start(argv)
  from vmle_jax.config import Schedule, TrialConfig
  from vmle_jax.data import make_synthetic
  from vmle_jax.engine import Engine
  from vmle_jax.memory.store import Store
  from vmle_jax.search.space import Choice, SearchSpace
  from vmle_jax.search.strategies import make_strategy
  from vmle_jax.search.study import StudySpec, run_study

  data = make_synthetic(num_users=500, num_items=200, seed=3)
  base = TrialConfig(hidden=16, blocks=1, max_len=10, num_negatives=16)
  space = SearchSpace.for_backbone(
      "sasrec",
      base=base,
      only=["hidden", "blocks", "max_len", "loss", "num_negatives", "heads", "ffn_mult", "lr"],
  )
  # Tiny sizes only: the point is the number of programs, not their size.
  dims = dict(
      space.dims,
      hidden=Choice((16, 32), 16),
      max_len=Choice((10, 20), 10),
      num_negatives=Choice((16, 32, 64), 16),
  )
  space = SearchSpace(backbone="sasrec", dims=dims, base=space.base)
  schedule = Schedule(max_epochs=FLAGS.epochs, patience=1)
  engine = Engine(data, schedule, log=None, max_programs=FLAGS.max_programs)
  samples = []

  def log(line):
    if "] batch" in line and "bucket" in line:
      samples.append(rss_mb())

  with tempfile.TemporaryDirectory() as tmp:
    store = Store(os.path.join(tmp, "soak.sqlite"))
    spec = StudySpec(name="soak", strategy="random", budget_trials=FLAGS.trials, lanes=1)
    run_study(
        spec,
        data,
        store,
        make_strategy("random", space, seed=0, lanes=1),
        space,
        schedule,
        engine=engine,
        log=log,
        engine_log=False,
    )
    signatures = len({t.signature for t in store.finished_trials(store.study("soak")["id"])})
  first = samples[0]
  quarter = max(1, len(samples) // 4)
  growth = samples[-1] - samples[-quarter - 1]
  verdict = "flat" if growth < 0.1 * first else "GROWING"
  print(
      f"memory soak: {len(samples)} buckets, {signatures} static signatures, "
      f"max_programs {FLAGS.max_programs}: RSS after bucket 1 {first:.0f} MB, at 25/50/75/100% "
      + "/".join(
          f"{samples[min(len(samples) - 1, len(samples) * k // 4)]:.0f}" for k in (1, 2, 3, 4)
      )
      + f" MB, peak {peak_mb():.0f} MB; last-quarter growth {growth:+.0f} MB "
      f"({growth / first:+.1%} of bucket 1: {verdict}); {_common.machine()}; {_common.today()}"
  )


if __name__ == "__main__":
  app.run(main)
