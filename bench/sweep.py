"""The same random sweep with lanes=8 and lanes=1: wall-clock ratio and identical results.

32 trials of SASRec on Beauty over the dynamic dimensions (lr, dropout,
attn_dropout, weight_decay: one static signature, so lanes fill), epochs
capped with `--epochs` (early stopping still applies). Both runs see the same
trials in the same order with the same batches and dropout masks, so the
per-trial best validation NDCG@10 agree up to float32 summation order (a
batched matmul sums in another order than a single one, and training amplifies
the difference: at most 1.6e-3 after 3 epochs on Beauty; the unit test of one
lane against a single run agrees to 1e-4 on small data).

  python bench/sweep.py [--trials=32] [--epochs=3]

Prints one line.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_string("dataset", "beauty", "Data set name or path.")
flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_integer("trials", 32, "Trials per sweep.")
flags.DEFINE_integer("epochs", 3, "Epoch cap per trial.")
flags.DEFINE_integer("lanes", 8, "Lanes of the batched run (the other run uses 1).")
FLAGS = flags.FLAGS


def main(argv):
  _common.start(argv)
  from vmle_jax.config import Schedule, TrialConfig
  from vmle_jax.data import load_dataset
  from vmle_jax.memory.store import Store
  from vmle_jax.search.space import SearchSpace
  from vmle_jax.search.strategies import make_strategy
  from vmle_jax.search.study import StudySpec, run_study

  data = load_dataset(FLAGS.dataset, FLAGS.data_dir)
  base = TrialConfig(loss="sampled_softmax", num_negatives=256)
  space = SearchSpace.for_backbone(
      "sasrec", base=base, only=["lr", "dropout", "attn_dropout", "weight_decay"]
  )
  schedule = Schedule(max_epochs=FLAGS.epochs, patience=5)
  values, seconds = {}, {}
  with tempfile.TemporaryDirectory() as tmp:
    store = Store(os.path.join(tmp, "m.sqlite"))
    for lanes in (FLAGS.lanes, 1):
      spec = StudySpec(
          name=f"lanes{lanes}",
          strategy="random-packed",
          budget_trials=FLAGS.trials,
          lanes=lanes,
          seed=0,
      )
      t = time.perf_counter()
      run_study(
          spec,
          data,
          store,
          make_strategy("random-packed", space, 0),
          space,
          schedule,
          log=lambda s: None,
          engine_log=False,
      )
      seconds[lanes] = time.perf_counter() - t
      trials = store.finished_trials(store.study(spec.name)["id"])
      values[lanes] = {str(t.config): t.valid["NDCG@10"] for t in trials}
  same = values[FLAGS.lanes].keys() == values[1].keys()
  diff = (
      max(abs(values[FLAGS.lanes][k] - values[1][k]) for k in values[1]) if same else float("nan")
  )
  print(
      f"sweep {data.name} random-packed {FLAGS.trials} trials, {FLAGS.epochs} epochs max: "
      f"lanes={FLAGS.lanes} {seconds[FLAGS.lanes]:.0f} s, lanes=1 {seconds[1]:.0f} s, "
      f"ratio {seconds[1] / seconds[FLAGS.lanes]:.2f}x; same trials {same}, "
      f"max |dNDCG@10| {diff:.2e}; {_common.machine()}; {_common.today()}"
  )


if __name__ == "__main__":
  app.run(main)
