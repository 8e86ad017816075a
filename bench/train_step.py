"""Milliseconds per SASRec training step and full-ranking evaluation users per second.

Shapes of the issue: L=50, D=64, B=128, 2 blocks, 1 head, BCE, dropout 0.2, on
Beauty. A step is one AdamW update on 128 users; it is timed inside the
engine's jitted epoch (lax.scan over the epoch's batches), after a warm-up
epoch that includes compilation, with the packed layout (the default) and
the plain [128, 51] layout. Evaluation ranks every validation user's target
against all items.

  python bench/train_step.py [--dataset=beauty] [--epochs=4]

Step times are the mean over the timed epochs and the best epoch's.

Prints one line.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_string("dataset", "beauty", "Data set name or path.")
flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_integer("epochs", 4, "Timed epochs per layout (after one warm-up epoch).")
FLAGS = flags.FLAGS


def time_steps(engine, cfg, epochs: int) -> tuple[float, float, object]:
  """Mean and best-epoch milliseconds per step over `epochs` timed epochs (after a
  warm-up epoch); the best epoch is the figure a busy shared host disturbs least."""
  import jax
  import numpy as np
  from vmle_jax.engine.lanes import keeps_average

  prog = engine.programs(cfg.static_signature())
  states, hp = engine.init_lanes([cfg])
  alive = engine.shard_lanes(np.ones(1, bool))
  states, _, loss = prog.epoch(
      states,
      hp,
      alive,
      engine.epoch_data(cfg.max_len, cfg.batch_size, 1),
      with_average=keeps_average([cfg]),
  )
  loss.block_until_ready()
  total_s, total_steps, best_ms = 0.0, 0, float("inf")
  for e in range(epochs):
    batches = engine.epoch_data(cfg.max_len, cfg.batch_size, 2 + e)
    jax.block_until_ready(batches)
    t = time.perf_counter()
    states, _, loss = prog.epoch(states, hp, alive, batches, with_average=keeps_average([cfg]))
    loss.block_until_ready()
    elapsed, steps = time.perf_counter() - t, batches["tokens"].shape[0]
    total_s, total_steps = total_s + elapsed, total_steps + steps
    best_ms = min(best_ms, 1000.0 * elapsed / steps)
  return 1000.0 * total_s / total_steps, best_ms, states


def main(argv):
  _common.start(argv)
  import dataclasses
  from vmle_jax.config import Schedule
  from vmle_jax.data import leave_one_out, load_dataset
  from vmle_jax.engine import Engine

  data = load_dataset(FLAGS.dataset, FLAGS.data_dir)
  split = leave_one_out(data, 50)
  cfg = _common.beauty_shapes()
  packed = Engine(split, Schedule(packed=True), log=None)
  plain = Engine(split, dataclasses.replace(Schedule(), packed=False), log=None)
  ms_packed, best_packed, states = time_steps(packed, cfg, FLAGS.epochs)
  ms_plain, best_plain, _ = time_steps(plain, cfg, FLAGS.epochs)
  packed.lane_ranks(cfg, states.params)  # compile
  reps = 3
  t = time.perf_counter()
  for _ in range(reps):
    packed.lane_ranks(cfg, states.params)
  users_per_s = reps * split.valid.num_users / (time.perf_counter() - t)
  print(
      f"train_step {data.name} L=50 D=64 B=128 blocks=2 heads=1 bce dropout=0.2: "
      f"{ms_packed:.1f} ms/step packed (best epoch {best_packed:.1f}), "
      f"{ms_plain:.1f} ms/step plain (best epoch {best_plain:.1f}); "
      f"full-ranking eval {users_per_s:,.0f} users/s over {data.num_items:,} items; "
      f"{_common.machine()}; {_common.today()}"
  )


if __name__ == "__main__":
  app.run(main)
