r"""vmle-train: train one SASRec configuration and report full-ranking metrics.

  vmle-train                                   # synthetic data, default config
  vmle-train --dataset=beauty --data_dir=../shared/data --loss=sampled_softmax \
      --num_negatives=256 --workdir=runs/beauty

Writes results.json, curve.csv and the best parameters (orbax) to --workdir.
"""

from __future__ import annotations

import os
import time

from absl import flags

from vmle_jax.launch import common

common.define_data_flags()
common.define_config_flags()
common.define_schedule_flags()
flags.DEFINE_string("workdir", None, "Output directory (default: runs/train-<dataset>-<time>).")
flags.DEFINE_enum(
    "protocol",
    "full",
    ["full", "sampled-100", "both"],
    "Evaluation protocol: full ranking (default), the sampled 100-candidate "
    "protocol of older papers (inflated, labelled), or both.",
)
FLAGS = flags.FLAGS


def main(argv) -> None:
  common.reject_positional(argv)
  from vmle_jax.training import format_metrics, train_and_evaluate

  preset = common.setup_runtime(FLAGS)
  resolved = common.resolve_flags(FLAGS, preset)
  data = common.dataset_from_flags(FLAGS)
  workdir = FLAGS.workdir or os.path.join(
      "runs", f"train-{data.name}-{time.strftime('%Y%m%d-%H%M%S')}"
  )
  engine = common.engine_from_flags(FLAGS, data, resolved, preset)
  results = train_and_evaluate(
      resolved.config, data, resolved.schedule, workdir, FLAGS.protocol, engine=engine
  )
  print(
      f"status: {results['status']} after {results['epochs']} epochs "
      f"(best epoch {results['best_epoch']}, {results['train_seconds']:.1f} s)"
  )
  if results.get("error"):
    print(f"error: {results['error']}")
  if "test" in results:
    print(f"evaluation: {results['protocol']}")
    print(f"valid  {format_metrics(results['valid'])}")
    print(f"test   {format_metrics(results['test'])}")
  print(f"results: {os.path.join(workdir, 'results.json')}")


def run() -> None:
  """Console-script entry point."""
  common.run_main(main)


if __name__ == "__main__":
  run()
