"""How close the price of a study's first batch is to its measured time, before any trial.

  python bench/price.py                       # every shared data set, the probe run afresh
  python bench/price.py --datasets=ml-100k --clock=cpu
  python bench/price.py --db=runs/memory.sqlite   # the machine's cached price, if any

Under a budget in minutes the planner prices its first batch before anything
has trained: FLOPs per lane-epoch from each structure's shapes and the data's
statistics (search/cost.py) times this machine's probed rate, plus the
compilation of each structure (search/probe.py). For every data set this
prices two first batches of one epoch per lane, then trains each on a fresh
engine (so it compiles, as a study's first batch does) and times it:

  mixed:   4 lanes of 4 structures (the default; window 200; the full softmax;
           width 128), one bucket each, as the planner's first batch under a
           playbook that moves the structure;
  default: 4 lanes of the default structure (learning rates 3e-4 to 3e-3), one
           bucket, the first batch of a search that moves only the rates.

Prints a table (data set, batch, structure, estimated s, measured s, ratio
measured/estimated) and one line: the lowest and highest ratio of a batch.
`--clock=cpu` times the probe and the batches by this process's CPU time:
on a core shared with other work (run pinned: `taskset -c 0`) the wall-clock
counts the other work too, and the ratio would measure the neighbours; wall
seconds are printed beside it either way.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_list("datasets", ["ml-100k", "beauty", "toys", "sports"], "Data set names or paths.")
flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_string("db", None, "A memory to read the machine's price from (default: probe anew).")
flags.DEFINE_enum("clock", "wall", ["wall", "cpu"], "Time by wall-clock or this process's CPU.")
flags.DEFINE_integer("epochs", 1, "Epochs each lane trains (the estimate's too).")
FLAGS = flags.FLAGS

# The mixed first batch: one lane per structure (what the playbook's first moves change).
STRUCTURES = (
    ("default", {}),
    ("window 200", {"max_len": 200}),
    ("full softmax", {"loss": "softmax"}),
    ("width 128", {"hidden": 128}),
)
RATES = (3e-4, 1e-3, 2e-3, 3e-3)  # the default batch: four lanes of one structure


def main(argv):
  _common.start(argv)
  from vmle_jax.memory.store import Store
  from vmle_jax.search.probe import machine_price

  clock = time.process_time if FLAGS.clock == "cpu" else time.perf_counter
  with tempfile.TemporaryDirectory() as tmp:
    store = Store(FLAGS.db or os.path.join(tmp, "memory.sqlite"))
    probed = machine_price(store, clock=clock, log=lambda s: print(s, flush=True))
    store.close()
  price = probed.price
  print(
      f"price: {price.seconds_per_tflop:.1f} s/TFLOP + {price.seconds_per_lane_epoch:.2f} s per "
      f"lane-epoch, {price.seconds_per_compile_unit:.1f} s per compile unit"
      + (f" (probed in {probed.probe_seconds:.0f} s)" if probed.probe_seconds else " (cached)"),
      flush=True,
  )
  header = (
      f"{'data set':9s} {'batch':8s} {'structure':13s} {'est s':>7s} {'meas s':>7s} {'ratio':>6s}"
  )
  print(header + f" {'wall s':>7s}", flush=True)
  ratios = []
  for name in FLAGS.datasets:
    for batch, rows in run_dataset(name, price, clock):
      if len(rows) > 1:
        rows = rows + [("= batch", *(sum(r[i] for r in rows) for i in (1, 2, 3)))]
      for label, est, meas, wall in rows:
        print(
            f"{name:9s} {batch:8s} {label:13s} {est:7.1f} {meas:7.1f} {meas / est:6.2f} "
            f"{wall:7.1f}",
            flush=True,
        )
      est, meas = rows[-1][1], rows[-1][2]
      ratios.append((meas / est, f"{name} {batch}"))
  lo, hi = min(ratios), max(ratios)
  print(
      f"price of a first batch ({FLAGS.epochs} epoch per lane, {FLAGS.clock} clock): measured/"
      f"estimated {lo[0]:.2f} ({lo[1]}) to {hi[0]:.2f} ({hi[1]}) over {len(ratios)} batches on "
      f"{', '.join(FLAGS.datasets)}; probe {price.seconds_per_tflop:.1f} s/TFLOP; "
      f"{_common.machine()}; {_common.today()}"
  )


def run_dataset(name: str, price, clock) -> list[tuple[str, list]]:
  """[(batch, [(bucket, estimated s, measured s, wall s)])] of the two first batches on data
  set `name`, each trained on a fresh engine, bucket by bucket as the study loop trains."""
  from vmle_jax.config import Schedule, TrialConfig
  from vmle_jax.data import load_dataset
  from vmle_jax.engine import Engine

  data = load_dataset(name, FLAGS.data_dir)
  stats = data.fingerprint()
  schedule = Schedule(max_epochs=FLAGS.epochs, patience=FLAGS.epochs + 1)
  base = TrialConfig()
  out = []
  mixed = [(label, base.replace(seed=i, **change)) for i, (label, change) in enumerate(STRUCTURES)]
  default = [("4 lanes", base.replace(lr=lr, seed=i)) for i, lr in enumerate(RATES)]
  for batch, lanes in (("mixed", mixed), ("default", default)):
    labels = {c.signature_key(): label for label, c in lanes}
    configs = [c for _, c in lanes]
    engine = Engine(data, schedule, log=None)  # fresh: the batch compiles, as a study's first
    rows = []
    for bucket in buckets(configs):
      estimate = price.batch_seconds([c.to_dict() for c in bucket], stats, FLAGS.epochs)
      t, w = clock(), time.perf_counter()
      engine.train(bucket, label=f"{name} {batch}")
      rows.append(
          (labels[bucket[0].signature_key()], estimate, clock() - t, time.perf_counter() - w)
      )
    out.append((batch, rows))
  return out


def buckets(configs) -> list[list]:
  """The configs grouped by static structure (as the study loop trains them), in order."""
  groups: dict = {}
  for c in configs:
    groups.setdefault(c.signature_key(), []).append(c)
  return list(groups.values())


if __name__ == "__main__":
  _common.run(main)
