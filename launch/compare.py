"""vmle-compare: the agent vs grid vs random vs TPE on one data set, same engine and budget.

  vmle-compare                                     # synthetic data, small budget
  vmle-compare --dataset=beauty --data_dir=../shared/data --budget_trials=16 \
      --seeds=0,1 --epochs=10 --db=runs/compare.sqlite
  vmle-compare --report_only --db=runs/compare.sqlite --dataset=beauty

Every strategy evaluates the space's default config first (random and TPE
seeded with it), runs on the same engine with the same lanes, budget and
seeds, and lands in the SQLite memory; rerunning resumes unfinished studies
and skips finished ones. The report (markdown, HTML, PNG curves) goes to
--workdir. The agent recalls only its own study (no memory from other seeds
of the same comparison) unless --summary_from gives it a summary.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

from vmle_jax.launch import common

common.define_data_flags()
common.define_schedule_flags(default_epochs=20)
common.define_study_flags()
flags.DEFINE_list("strategies", ["agent", "grid", "random", "tpe"],
                  "Strategies to compare: agent (with --planner), grid, random, tpe.")
flags.DEFINE_list("seeds", ["0", "1"], "Seeds; each strategy runs once per seed.")
flags.DEFINE_enum("planner", "heuristic", ["heuristic", "gemini", "replay"], "The agent's planner.")
flags.DEFINE_string("model", None, "Gemini model for --planner=gemini.")
flags.DEFINE_string("summary_from", None, "A cognition summary (JSON) the agent starts from.")
flags.DEFINE_boolean("report_only", False, "Redraw the report from --db without training.")
flags.DEFINE_float("target", 0.98, "Target as a fraction of the best value any strategy found.")
flags.DEFINE_list("dims", None, "Searched dimensions (default: the backbone's whole space; "
                  "grid uses its default grid dimensions).")
common.define_config_flags()
FLAGS = flags.FLAGS


def main(argv) -> None:
  common.reject_positional(argv)
  from vmle_jax.memory.store import StoreError
  from vmle_jax.report import load_group, write_report
  from vmle_jax.search.agent import AgentStrategy
  from vmle_jax.search.planners import make_planner
  from vmle_jax.search.space import GRID_DIMS, SearchSpace, SpaceError
  from vmle_jax.search.strategies import make_strategy
  from vmle_jax.search.study import StudySpec, _value, run_study
  from vmle_jax.training import device_description

  bad = [s for s in FLAGS.strategies if s not in ("agent", "grid", "random", "tpe")]
  if bad:
    common.fail(f"--strategies: {bad} not among agent, grid, random, tpe")
  try:
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError:
    common.fail(f"--seeds={','.join(FLAGS.seeds)}: seeds are integers")
  preset = common.setup_runtime(FLAGS)
  data = common.dataset_from_flags(FLAGS)
  base = common.config_from_flags(FLAGS, preset=preset)
  group = f"{data.name}-{base.backbone}"
  workdir = FLAGS.workdir or os.path.join("runs", f"compare-{group}")
  store = common.open_store(FLAGS.db)
  if not FLAGS.report_only:
    schedule = common.schedule_from_flags(FLAGS, preset=preset)
    fixed = common.explicit_config_flags(FLAGS)
    fixed.pop("seed", None)
    summary = None
    if FLAGS.summary_from:
      with open(FLAGS.summary_from) as f:
        summary = json.load(f)
    engine = common.engine_from_flags(FLAGS, data, schedule, preset,
                                      log=print if FLAGS.verbose_epochs else None)
    lanes = None
    for seed in seeds:
      for strategy_name in FLAGS.strategies:
        dims = FLAGS.dims or (list(GRID_DIMS[base.backbone]) if strategy_name == "grid" else None)
        try:
          space = SearchSpace.for_backbone(base.backbone, base=base.replace(seed=seed), only=dims,
                                           fixed=fixed)
        except SpaceError as e:
          common.fail(f"--dims: {e}")
        lanes = lanes or common.lanes_from_flags(FLAGS, space, data, preset, engine)
        label = f"agent:{FLAGS.planner}" if strategy_name == "agent" else strategy_name
        name = f"cmp-{group}-{strategy_name}-s{seed}"
        existing = store.study(name) if store else None
        if existing and existing["status"] == "finished":
          continue
        if strategy_name == "agent":
          strategy = AgentStrategy(make_planner(FLAGS.planner, FLAGS.model), space,
                                   recall="study", summary=summary)
        else:
          from vmle_jax.config import TrialConfig
          history = [(TrialConfig.from_dict(t["config"]), _value(t))
                     for t in store.finished_trials(existing["id"])] if existing else []
          strategy = make_strategy(strategy_name, space, seed, history)
        spec = StudySpec(name=name, backbone=base.backbone, strategy=label,
                         budget_trials=FLAGS.budget_trials, budget_minutes=FLAGS.budget_minutes,
                         lanes=lanes, seed=seed, dims=tuple(space.names), group=group)
        print(f"== {name}: {label}, seed {seed}, {FLAGS.budget_trials} trials, {lanes} lanes")
        t0 = time.perf_counter()
        try:
          run_study(spec, data, store, strategy, space, schedule, engine=engine,
                    resume=existing is not None, workdir=os.path.join(workdir, name))
        except StoreError as e:
          common.fail(str(e))
        print(f"== {name} done in {time.perf_counter() - t0:.0f} s")
  if store is None:  # a follower process of a multi-host run: nothing to report
    return
  runs = load_group(store, group)
  if not runs:
    common.fail(f"no studies of {group} in {FLAGS.db}; run without --report_only first")
  table = write_report(runs, workdir, f"{data.name} / {base.backbone}: agent vs grid vs random vs TPE",
                       device=device_description(), target_fraction=FLAGS.target)
  for strategy, row in table["strategies"].items():
    ttt = row["trials_to_target"]
    print(f"{strategy:18s} best val NDCG@10 {row['best_valid_ndcg10'] or float('nan'):.4f}  "
          f"trials to target {'-' if ttt is None else f'{ttt:.1f}'} "
          f"({row['reached']}/{row['seeds']} seeds)  test NDCG@10 "
          f"{row['test_ndcg10'] or float('nan'):.4f}")
  print(f"report: {os.path.join(workdir, 'report.md')} (and report.html)")


def run() -> None:
  app.run(main)


if __name__ == "__main__":
  run()
