r"""vmle-compare: the agent vs grid vs random vs TPE on one data set, same engine and budget.

  vmle-compare                                     # synthetic data, small budget
  vmle-compare --dataset=beauty --data_dir=../shared/data --budget_trials=16 \
      --seeds=0,1 --epochs=10 --db=runs/compare.sqlite
  vmle-compare --report_only --db=runs/compare.sqlite --dataset=beauty

Grid, random and TPE evaluate the space's default config first; the agent
and tpe-playbook start from the playbook's first batch. Every strategy runs
on the same engine with the same lanes, budget and
seeds, and lands in the SQLite memory; rerunning resumes unfinished studies
and skips finished ones. The report (markdown, HTML, PNG curves) goes to
--workdir. The agent recalls only its own study (no memory from other seeds
of the same comparison) unless --summary_from gives it a summary.
"""

from __future__ import annotations

import os

from absl import flags

from vmle_jax.launch import common
from vmle_jax.search.strategies import COMPARED, STRATEGIES, strategies_help

# Every registered strategy but those needing inputs these flags cannot give (tpe-warm's
# warm-start configurations: bench/transfer.py runs it).
COMPARABLE = tuple(k for k, e in STRATEGIES.items() if e.needs in (None, "summary"))

common.define_data_flags()
common.define_schedule_flags(default_epochs=20)
common.define_study_flags()
flags.DEFINE_list(
    "strategies", list(COMPARED), f"Strategies to compare: {strategies_help(COMPARABLE)}."
)
flags.DEFINE_list("seeds", ["0", "1"], "Seeds; each strategy runs once per seed.")
common.define_planner_flags()
flags.DEFINE_string("summary_from", None, "A cognition summary (JSON) the agent starts from.")
flags.DEFINE_boolean("report_only", False, "Redraw the report from --db without training.")
flags.DEFINE_float("target", 0.98, "Target as a fraction of the best value any strategy found.")
flags.DEFINE_list(
    "dims",
    None,
    "Searched dimensions (default: the backbone's whole space; "
    "grid uses its default grid dimensions). Names: " + common.dimension_names() + ".",
)
common.define_config_flags()
FLAGS = flags.FLAGS


def main(argv) -> None:
  common.reject_positional(argv)
  from vmle_jax.memory.store import StoreError
  from vmle_jax.report import load_group, write_report
  from vmle_jax.report.render import console_lines
  from vmle_jax.search.comparison import Comparison, group_name, run_comparison
  from vmle_jax.training import device_description

  common.check_planner_flags(FLAGS)
  strategies = common.check_names("--strategies", FLAGS.strategies, COMPARABLE)
  if "agent-summary" in strategies and not FLAGS.summary_from:
    common.fail("--strategies=agent-summary needs --summary_from=<summary>.json")
  seeds = common.check_seeds("--seeds", FLAGS.seeds)
  if FLAGS.report_only:
    preset = common.setup_runtime(FLAGS)
    data = common.dataset_from_flags(FLAGS)
    base = common.resolve_flags(FLAGS, preset).config
  else:
    setup = common.study_setup(FLAGS, FLAGS.dims)
    data, base = setup.data, setup.base
  group = group_name(data, base)
  workdir = FLAGS.workdir or os.path.join("runs", f"compare-{group}")
  summary = None
  if FLAGS.summary_from and not FLAGS.report_only:  # checked before anything is written
    summary = common.summary_from_flag(
        FLAGS.summary_from, base.backbone, data, setup.schedule.max_epochs
    )
  store = common.open_store(FLAGS.db, readonly=FLAGS.report_only)
  if not FLAGS.report_only:
    fixed = common.explicit_config_flags(FLAGS)
    fixed.pop("seed", None)
    try:
      run_comparison(
          Comparison(
              strategies=strategies,
              seeds=seeds,
              lanes=setup.lanes,
              budget_trials=common.trial_cap(FLAGS),
              budget_minutes=FLAGS.budget_minutes,
              budget_lane_epochs=FLAGS.budget_lane_epochs,
              early_stop=FLAGS.early_stop,
              dims=FLAGS.dims,
              fixed=fixed,
              planner=FLAGS.planner,
              model=FLAGS.model,
              planner_options={"timeout_s": FLAGS.llm_timeout_s, "attempts": FLAGS.llm_retries},
              planner_budget_s=None
              if FLAGS.planner_minutes is None
              else 60 * FLAGS.planner_minutes,
              summary=summary,
          ),
          data,
          base,
          store,
          setup.engine,
          setup.schedule,
          workdir,
      )
    except StoreError as e:
      common.fail(str(e))
  if store is None:  # a follower process of a multi-host run: nothing to report
    return
  runs = load_group(store, group)
  if not runs:
    common.fail(f"no studies of {group} in {FLAGS.db}; run without --report_only first")
  table = write_report(
      runs,
      workdir,
      f"{data.name} / {base.backbone}: {' vs '.join(sorted({r.strategy for r in runs}))}",
      device=device_description(),
      target_fraction=FLAGS.target,
  )
  for line in console_lines(table):
    print(line)
  print(f"report: {os.path.join(workdir, 'report.md')} (and report.html)")


def run() -> None:
  common.run_main(main)


if __name__ == "__main__":
  run()
