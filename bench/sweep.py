"""The same random sweep with lanes=8 (vmapped, and in series) and lanes=1: wall-clock
ratios and identical results.

32 trials of SASRec on Beauty over the dynamic dimensions (lr, dropout,
attn_dropout, weight_decay: one static signature, so lanes fill), epochs
capped with `--epochs` (early stopping still applies). Both runs see the same
trials in the same order with the same batches and dropout masks, so the
per-trial best validation NDCG@10 agree up to float32 summation order (a
batched matmul sums in another order than a single one, and training amplifies
the difference: at most 1.6e-3 after 3 epochs on Beauty; the unit test of one
lane against a single run agrees to 1e-4 on small data).

A bucket's lanes train vmapped together (`--lane_execution=vmap`, what
accelerators run) or one after another with the one-lane program (`serial`,
the default on a single CPU device); both are timed.

  python bench/sweep.py [--trials=32] [--epochs=3] [--modes=vmap,serial]

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
flags.DEFINE_integer("lanes", 8, "Lanes of the batched runs (the other run uses 1).")
flags.DEFINE_list("modes", ["vmap", "serial"], "How the batched runs train their lanes.")
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
  for mode in FLAGS.modes:
    if mode not in ("vmap", "serial"):
      _common.fail(f"--modes: {mode!r} is not one of vmap, serial")
  runs = [(mode, FLAGS.lanes) for mode in FLAGS.modes] + [("vmap", 1)]
  values, seconds = {}, {}
  with tempfile.TemporaryDirectory() as tmp:
    store = Store(os.path.join(tmp, "m.sqlite"))
    for mode, lanes in runs:
      spec = StudySpec(
          name=f"lanes{lanes}-{mode}",
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
          Schedule(max_epochs=FLAGS.epochs, patience=5, lane_execution=mode),
          log=lambda s: None,
          engine_log=False,
      )
      seconds[mode, lanes] = time.perf_counter() - t
      trials = store.finished_trials(store.study(spec.name)["id"])
      values[mode, lanes] = {str(t.config): t.valid["NDCG@10"] for t in trials}
  single = values["vmap", 1]
  same = all(v.keys() == single.keys() for v in values.values())
  diff = (
      max(abs(v[k] - single[k]) for v in values.values() for k in single) if same else float("nan")
  )
  names = {"vmap": "vmapped", "serial": "in series"}
  batched = ", ".join(
      f"lanes={FLAGS.lanes} {names[m]} {seconds[m, FLAGS.lanes]:.0f} s "
      f"(ratio {seconds['vmap', 1] / seconds[m, FLAGS.lanes]:.2f}x)"
      for m in FLAGS.modes
  )
  print(
      f"sweep {data.name} random-packed {FLAGS.trials} trials, {FLAGS.epochs} epochs max: "
      f"{batched}, lanes=1 {seconds['vmap', 1]:.0f} s; same trials {same}, "
      f"max |dNDCG@10| {diff:.2e}; {_common.machine()}; {_common.today()}"
  )


if __name__ == "__main__":
  app.run(main)
