"""Config-steps per second of the lanes engine for K lanes, and the ratio to K=1.

SASRec on Beauty shapes (L=50, D=64, B=128, 2 blocks, 1 head, BCE, dropout
0.2); the K lanes differ in learning rate and dropout (dynamic values), so
all share one compiled program. A config-step is one optimizer step of one
lane; config-steps/s = K x steps/s. Each K runs a warm-up call (compilation),
then `--steps` timed steps inside the engine's jitted scan.

  python bench/lanes.py [--lanes=1,8,32] [--steps=20]

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
flags.DEFINE_list("lanes", None, "Lane counts (default 1,8,32 on CPU; 1,8,32,128,256 otherwise).")
flags.DEFINE_integer("steps", 20, "Timed steps per lane count.")
flags.DEFINE_boolean("packed", True, "Packed training rows (the engine's default).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Matmul dtype.")
flags.DEFINE_string("preset", None, "Host preset (tpu_configs/) for the mesh.")
FLAGS = flags.FLAGS


def main(argv):
  _common.start(argv)
  import jax
  import numpy as np
  from vmle_jax.config import Schedule
  from vmle_jax.data import leave_one_out, load_dataset
  from vmle_jax.engine import Engine
  from vmle_jax.engine.lanes import keeps_average

  data = load_dataset(FLAGS.dataset, FLAGS.data_dir)
  _, mesh = _common.preset_and_mesh(FLAGS.preset)
  engine = Engine(
      leave_one_out(data, 50),
      Schedule(packed=FLAGS.packed, compute_dtype=FLAGS.dtype),
      log=None,
      mesh=mesh,
  )
  base = _common.beauty_shapes()
  default = "1,8,32" if jax.devices()[0].platform == "cpu" else "1,8,32,128,256"
  counts = [int(k) for k in (FLAGS.lanes or default.split(","))]
  prog = engine.programs(base.static_signature())
  batches = engine.epoch_data(50, base.batch_size, 1)
  steps = jax.tree.map(lambda x: x[: FLAGS.steps], batches)
  results = {}
  for k in counts:
    configs = [
        base.replace(lr=1e-3 * (1 + i % 4) / 2, dropout=0.1 + 0.1 * (i % 3), seed=i)
        for i in range(k)
    ]
    states, hp = engine.init_lanes(configs)
    alive = engine.shard_lanes(np.arange(engine.padded_lanes(k)) < k)
    states, _, loss = prog.epoch(
        states, hp, alive, steps, with_average=keeps_average(configs)
    )  # compile + warm-up
    loss.block_until_ready()
    t = time.perf_counter()
    states, _, loss = prog.epoch(states, hp, alive, steps, with_average=keeps_average(configs))
    loss.block_until_ready()
    results[k] = k * FLAGS.steps / (time.perf_counter() - t)
  figures = ", ".join(
      f"K={k}: {v:,.0f} config-steps/s (x{v / results[counts[0]]:.2f})" for k, v in results.items()
  )
  print(
      f"lanes {data.name} L=50 D=64 B=128 blocks=2 bce {FLAGS.dtype} "
      f"{'packed' if FLAGS.packed else 'plain'}: {figures}; {_common.machine()}; "
      f"{_common.today()}"
  )


if __name__ == "__main__":
  app.run(main)
