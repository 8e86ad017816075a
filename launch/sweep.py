r"""vmle-sweep: grid, random or TPE search; every batch of trials trains as vmapped lanes.

  vmle-sweep                                         # random, synthetic data, 16 trials
  vmle-sweep --dataset=beauty --data_dir=../shared/data --strategy=tpe \
      --budget_trials=48 --lanes=8 --db=runs/memory.sqlite --study=beauty-tpe
  vmle-sweep --study=beauty-tpe --db=runs/memory.sqlite --resume   # after a kill

Trials, metrics and curves go to the SQLite --db; trials.csv, summary.json and
the best config's parameters to --workdir.
"""

from __future__ import annotations

import os
import time

from absl import flags

from vmle_jax.launch import common
from vmle_jax.search.strategies import SEARCHES, STRATEGIES, strategies_help

common.define_data_flags()
common.define_schedule_flags(default_epochs=50)
common.define_study_flags()
flags.DEFINE_enum(
    "strategy",
    "random",
    list(SEARCHES),
    f"Search strategy: {strategies_help(SEARCHES)}. All but tpe-playbook evaluate the space's "
    "default config first.",
)
flags.DEFINE_list(
    "dims",
    None,
    "Searched dimensions (default: the backbone's whole space; for grid, "
    "loss,max_len,hidden,lr,dropout; HSTU: temperature instead of max_len). "
    "Other fields stay at the base config. Names: " + common.dimension_names() + ".",
)
common.define_config_flags()
FLAGS = flags.FLAGS


def main(argv) -> None:
  common.reject_positional(argv)
  from vmle_jax.search.strategies import make_strategy
  from vmle_jax.search.study import StudySpec

  dims = FLAGS.dims or STRATEGIES[FLAGS.strategy].default_dims(FLAGS.backbone)
  setup = common.study_setup(FLAGS, dims)
  data, base, space, lanes = setup.data, setup.base, setup.space, setup.lanes
  name = FLAGS.study or common.safe_name(
      f"{data.name}-{base.backbone}-{FLAGS.strategy}-s{FLAGS.seed}"
  )
  workdir = FLAGS.workdir or os.path.join("runs", name)
  spec = StudySpec(
      name=name,
      backbone=base.backbone,
      strategy=FLAGS.strategy,
      budget_trials=common.trial_cap(FLAGS),
      budget_minutes=FLAGS.budget_minutes,
      budget_lane_epochs=FLAGS.budget_lane_epochs,
      lanes=lanes,
      seed=FLAGS.seed,
      dims=tuple(space.names),
      early_stop=FLAGS.early_stop,
  )
  store = common.open_store(FLAGS.db)  # a broken file is one line (common.run_main)
  strategy = make_strategy(FLAGS.strategy, space, FLAGS.seed, lanes=lanes)
  print(
      f"study {name!r}: {FLAGS.strategy} search over {', '.join(space.names)}; "
      f"budget {spec.budget.describe()}"
      + f"; {lanes} lanes per bucket on {common.device_summary()}"
  )
  t0 = time.perf_counter()
  summary = common.run_study_from_flags(FLAGS, setup, spec, store, strategy, workdir)
  if store is not None:
    print(
        f"done in {time.perf_counter() - t0:.0f} s: {summary['trials']} trials; "
        f"memory {FLAGS.db}; results {workdir}"
    )


def run() -> None:
  common.run_main(main)


if __name__ == "__main__":
  run()
