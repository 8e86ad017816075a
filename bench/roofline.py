"""How close a training step and a full-ranking evaluation run to this machine's limits.

For one configuration (Beauty shapes by default: L=50, D=64, B=128, 2 blocks,
1 head, BCE, dropout 0.2) and K lanes:

- FLOPs and bytes of one training step and of the whole validation pass from
  XLA's cost analysis of the compiled programs. XLA counts a loop body once,
  so the step is compiled on its own (the epoch is a `lax.scan` of it) and
  the evaluation chunk by chunk (each width group is a `lax.map` of one
  chunk), multiplied by the trip counts;
- the machine's matmul peak (a jitted square matmul, the best of a few
  sizes) and memory bandwidth (a jitted read of a large array);
- the measured step time (inside the engine's jitted epoch) and evaluation
  time, and the fraction of the peak FLOP rate and of the bandwidth each
  reaches. XLA's byte count includes traffic that the caches serve, so the
  bandwidth fraction can pass 100%: read it as arithmetic intensity.

  python bench/roofline.py                      # CPU, K=1
  python bench/roofline.py --lanes=8 --preset=gpu_1x

Prints one line per figure (the probes, the step, the evaluation).
"""

from __future__ import annotations

import functools
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_string("dataset", "beauty", "Data set name or path.")
flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_integer("lanes", 1, "Lanes trained and evaluated together.")
flags.DEFINE_integer("epochs", 2, "Timed training epochs (after a warm-up epoch).")
flags.DEFINE_integer("eval_reps", 3, "Timed validation passes (after a warm-up pass).")
flags.DEFINE_string("preset", None, "Host preset (tpu_configs/): mesh, dtype, eval chunks.")
flags.DEFINE_enum(
    "loss", "bce", ["bce", "sampled_softmax", "softmax"], "Loss of the configuration."
)
flags.DEFINE_integer("num_negatives", 1, "Negatives of the loss.")
FLAGS = flags.FLAGS


def _seconds(fn, reps: int) -> float:
  """Best wall-clock of `reps` calls of `fn` (after one warm-up call)."""
  import jax

  jax.block_until_ready(fn())
  best = float("inf")
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t)
  return best


def matmul_peak(dtype: str) -> tuple[float, int]:
  """(FLOP/s, size) of the fastest jitted square matmul among a few sizes."""
  import jax
  import jax.numpy as jnp

  best = (0.0, 0)
  for n in (1024, 2048, 4096):
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32).astype(dtype)
    f = jax.jit(lambda x, y: x @ y)
    rate = 2 * n**3 / _seconds(lambda: f(a, b), 3)
    best = max(best, (rate, n))
  return best


def bandwidth() -> float:
  """Bytes per second read by a jitted sum over 256 MB (far beyond the caches).

  A read-only pass: an elementwise pass that writes a fresh output measures
  page faults of the new buffer more than the memory (4 GB/s here, against
  21 GB/s read)."""
  import jax
  import jax.numpy as jnp

  x = jnp.ones((64 * 1024 * 1024,), jnp.float32)
  f = jax.jit(jnp.sum)
  return x.size * 4 / _seconds(lambda: f(x), 5)


def cost(compiled) -> tuple[float, float]:
  """(FLOPs, bytes accessed) of a compiled program from XLA's cost analysis."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jax: one dict per device program
    analysis = analysis[0]
  return float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))


def main(argv):
  _common.start(argv)
  import jax
  import numpy as np
  from vmle_jax.config import resolve
  from vmle_jax.data import leave_one_out, load_dataset
  from vmle_jax.engine import Engine
  from vmle_jax.engine.lanes import keeps_average

  preset, mesh = _common.preset_and_mesh(FLAGS.preset)
  schedule = resolve(preset=preset).schedule
  data = load_dataset(FLAGS.dataset, FLAGS.data_dir)
  split = leave_one_out(data, 50)
  engine = Engine(split, schedule, log=None, mesh=mesh)
  cfg = _common.beauty_shapes(loss=FLAGS.loss, num_negatives=FLAGS.num_negatives)
  k = FLAGS.lanes
  configs = [cfg.replace(lr=1e-3 * (1 + i % 4) / 2, seed=i) for i in range(k)]
  prog = engine.programs(cfg.static_signature())
  average = keeps_average(configs)  # what the engine would run: no average at param_ema=0
  states, hp = engine.init_lanes(configs)
  alive = engine.shard_lanes(np.arange(engine.padded_lanes(k)) < k)
  peak, size = matmul_peak(schedule.compute_dtype)
  bw = bandwidth()
  where = f"{_common.machine()}; {_common.today()}"
  print(
      f"roofline probe: matmul peak {peak / 1e9:,.0f} GFLOP/s ({schedule.compute_dtype}, "
      f"{size}x{size}), memory bandwidth {bw / 1e9:,.1f} GB/s; {where}"
  )

  # -- training: one step's cost, the epoch's measured time per step.
  batches = engine.epoch_data(cfg.max_len, cfg.batch_size, 1)
  first = jax.tree.map(lambda x: x[0], batches)
  step = jax.jit(functools.partial(prog.lane_step, with_average=average))
  step_flops, step_bytes = cost(step.lower(states, first, hp).compile())
  states, _, loss = prog.epoch(
      states, hp, alive, batches, with_average=average
  )  # compile + warm-up
  loss.block_until_ready()
  total, steps = 0.0, 0
  for e in range(FLAGS.epochs):
    batches = engine.epoch_data(cfg.max_len, cfg.batch_size, 2 + e)
    jax.block_until_ready(batches)
    t = time.perf_counter()
    states, _, loss = prog.epoch(states, hp, alive, batches, with_average=average)
    loss.block_until_ready()
    total += time.perf_counter() - t
    steps += batches["tokens"].shape[0]
  step_s = total / steps
  rows = batches["tokens"].shape[1]
  print(
      f"roofline train_step {data.name} L=50 D=64 B=128 blocks=2 {cfg.loss} K={k} "
      f"(packed, {rows} rows): {step_s * 1e3:.2f} ms/step, {step_flops / 1e9:.3f} GFLOP and "
      f"{step_bytes / 1e6:.0f} MB per step: {step_flops / step_s / 1e9:,.0f} GFLOP/s = "
      f"{step_flops / step_s / peak:.0%} of the matmul peak, {step_bytes / step_s / 1e9:.1f} "
      f"GB/s = {step_bytes / step_s / bw:.0%} of the bandwidth; {where}"
  )

  # -- evaluation: every chunk's cost times the chunks, the measured pass.
  groups, _, users = engine.eval_arrays(
      cfg, "valid", "full", engine.padded_lanes(k), schedule.exclude_history
  )
  eval_flops = eval_bytes = 0.0
  for group in groups:
    one = jax.tree.map(lambda x: x[0], group)
    f, b = cost(jax.jit(prog.rank_chunk).lower(states.params, one).compile())
    eval_flops += f * group[0].shape[0]
    eval_bytes += b * group[0].shape[0]
  eval_s = _seconds(lambda: engine.lane_ranks(cfg, states.params, "valid"), FLAGS.eval_reps)
  print(
      f"roofline evaluation {data.name} ({users:,} users x {data.num_items:,} items, K={k}): "
      f"{users * k / eval_s:,.0f} lane-users/s, {eval_flops / 1e9:.2f} GFLOP and "
      f"{eval_bytes / 1e6:.0f} MB per pass: {eval_flops / eval_s / 1e9:,.0f} GFLOP/s = "
      f"{eval_flops / eval_s / peak:.0%} of the matmul peak, {eval_bytes / eval_s / 1e9:.1f} "
      f"GB/s = {eval_bytes / eval_s / bw:.0%} of the bandwidth; {where}"
  )


if __name__ == "__main__":
  app.run(main)
