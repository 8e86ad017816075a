"""The published experiment: the agent against grid, random and TPE on equal budgets.

  python bench/experiment.py --scale=cpu                    # every CPU-scale group below
  python bench/experiment.py --scale=cpu --groups=toys/sasrec --seeds=0,1,2
  python bench/experiment.py --scale=gpu --preset=gpu_1x    # three Amazon sets, both backbones

CPU scale (sized for this project's 2-core CPU; every group 16 trials in
batches of 4 lanes, so every strategy gets 4 rounds of feedback; TPE's random
startup is one batch; the median early-stopping rule for every strategy):

  ml-100k/sasrec  agent, grid, random, tpe   8 epochs max, patience 3, seeds 0-4
  ml-100k/hstu    agent, grid, random, tpe   8 epochs max, patience 3, seeds 0-2
  toys/sasrec     agent, random, tpe         5 epochs max, patience 2, seeds 0-2
  beauty/sasrec   agent, random, tpe         5 epochs max, patience 2, seeds 0-1

(--seeds adds more where the ETA allows; 2 is the floor.)

Equal compute (--budget=minutes; state in runs/experiment-<scale>-minutes):
every strategy gets the same minutes (sized from two-core figures to what
TPE needs for about 32 trials; on one core TPE runs about 23 in ml-100k's
20 minutes), with a trial cap that never binds; a study cuts a batch its own
measured seconds per lane-epoch say cannot fit to the trials that do, and
stops when none fits; the median-guarded
early-stopping rule for every strategy; the agent puts a cheaper scout
structure beside the playbook's in its first batch, ranks structures by gain
per unit of the study's measured price, and proposes none whose batch would
not finish in the minutes left. Run it pinned to one core (taskset -c 1) so
the minutes are not shared with other work; --strategies splits a group over
two cores (e.g. agent on one, random,tpe on the other):

  ml-100k/sasrec      agent, agent-tpe, random, tpe, tpe-playbook  8 epochs, patience 3, 20 min, seeds 0-4
  toys/sasrec         agent, agent-tpe, random, tpe, tpe-playbook  5 epochs, patience 2, 45 min, seeds 0-2
  sports/sasrec       agent, agent-tpe, random, tpe, tpe-playbook  5 epochs, patience 2, 40 min, seeds 0-2
  sports/sasrec-small agent, agent-tpe, random, tpe, tpe-playbook  5 epochs, patience 2, 12 min, seeds 0-2
  ml-100k/hstu        agent, agent-tpe, random, tpe, tpe-playbook  8 epochs, patience 3, 20 min, seeds 0-2

(tpe-playbook: TPE whose first batch is the agent's playbook batch, the seeded control;
agent-tpe: the agent with half of every later batch proposed by TPE. The
ml-100k and Toys groups cap trials at 256, which never bound; the later groups have no cap.
Every second of a study is charged: start-up, bookkeeping and a killed run's bucket too.)

Resumable: the SQLite file in --workdir is the state. Finished studies are
skipped and an interrupted one resumes, so the run can go on over several
sessions (--time_limit_minutes stops before starting a study past the
limit). Writes one report per group (report.md/.html/.json and PNGs), every
study's trials.csv, and results.md with all tables. Prints one line.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

from absl import flags

from vmle_jax.search.pruning import RULES

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from _groups import (  # noqa: E402
    EQUAL_MINUTES,
    SCALES,
)

flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_enum("scale", "cpu", ["cpu", "gpu"], "Experiment size (see the module docstring).")
flags.DEFINE_enum(
    "budget",
    "trials",
    ["trials", "minutes"],
    "trials: every strategy gets the same trials (16); minutes: the same wall-clock "
    "(see the module docstring).",
)
flags.DEFINE_float(
    "budget_minutes", None, "With --budget=minutes: minutes per study instead of each group's own."
)
flags.DEFINE_integer(
    "budget_lane_epochs",
    None,
    "With --budget=minutes: a lane-epoch limit per study as well, for every group.",
)
flags.DEFINE_list("groups", None, "Only these groups (dataset/backbone), e.g. ml-100k/sasrec.")
flags.DEFINE_list("seeds", None, "Seeds instead of each group's own (e.g. 0,1,2,3,4).")
flags.DEFINE_list(
    "strategies",
    None,
    "Run only these of each group's strategies (e.g. random,tpe); the tables still show "
    "every finished study of the group's strategies.",
)
flags.DEFINE_string("workdir", None, "State and reports (default runs/experiment-<scale>).")
flags.DEFINE_float("time_limit_minutes", None, "Start no new study after this many minutes.")
flags.DEFINE_integer("lanes", None, "Lanes per bucket instead of each group's own.")
flags.DEFINE_enum(
    "early_stop",
    None,
    list(RULES),
    "Early-stopping rule for every strategy instead of each group's own (search/pruning.py; "
    "median for --budget=trials, median-guarded for minutes).",
)
flags.DEFINE_string("preset", None, "Host preset (tpu_configs/), e.g. gpu_1x.")
flags.DEFINE_boolean("report_only", False, "Redraw the reports from --workdir without training.")
flags.DEFINE_string(
    "publish_to",
    None,
    "Copy the SQLite state, reports and per-trial CSVs here "
    "(e.g. docs/results/experiment-cpu) for committing; a later run resumes "
    "from it gunzipped into --workdir (files over 1 MiB are gzipped).",
)
FLAGS = flags.FLAGS


def fmt(value, spec: str, spread=None) -> str:
  if value is None:
    return "-"
  return spec.format(value) + ("" if spread is None else " ± " + spec.format(spread))


def group_table(
    name: str, table: dict, done: int, planned: int, report: str, unit: str = "trials"
) -> list[str]:
  from vmle_jax.report.render import equal_budget_lines

  lines = (
      [
          f"## {name} ({done} of {planned} {unit})",
          "",
          f"[report]({report})",
          "",
      ]
      + [l.replace("## ", "### ", 1) for l in equal_budget_lines(table)]
      + (
          [
              "### Secondary measures: counted in trials and over the whole study",
              "",
              "Whatever minutes they cost: figures beside the equal-compute comparison "
              "above, which is the verdict.",
              "",
          ]
          if table.get("equal_budget")
          else []
      )
      + [
          f"Target: 98% of the best validation NDCG@10 any strategy found "
          f"({fmt(table['target'], '{:.4f}')}).",
          "",
          "| strategy | best val NDCG@10 | test NDCG@10 | trials to target | reached | "
          "batches to target | lane-epochs to target | lane-epochs/study | trials/hour |",
          "|---|---|---|---|---|---|---|---|---|",
      ]
  )
  for s, row in table["strategies"].items():
    lines.append(
        f"| {s} | {fmt(row['best_valid_ndcg10'], '{:.4f}', row['best_valid_ndcg10_std'])} | "
        f"{fmt(row['test_ndcg10'], '{:.4f}', row['test_ndcg10_std'])} | "
        f"{fmt(row['trials_to_target'], '{:.1f}', row['trials_to_target_std'])} | "
        f"{row['reached']}/{row['seeds']} | {fmt(row['batches_to_target'], '{:.1f}')} | "
        f"{fmt(row['lane_epochs_to_target'], '{:.0f}')} | {fmt(row['lane_epochs'], '{:.0f}')} | "
        f"{fmt(row['trials_per_hour'], '{:.0f}')} |"
    )
  return lines + [""]


def chosen_groups() -> tuple[tuple, dict]:
  """(the groups to run and report, with the flags applied; per group key, the strategies to
  run); a bad flag is one line, exit 2."""
  from vmle_jax.launch.common import check_names, check_seeds

  groups = SCALES[FLAGS.scale] if FLAGS.budget == "trials" else EQUAL_MINUTES[FLAGS.scale]
  if FLAGS.groups is not None:
    known = {g.key: g for g in groups}
    groups = tuple(known[k] for k in check_names("--groups", FLAGS.groups, known))
  if FLAGS.seeds is not None:
    seeds = tuple(check_seeds("--seeds", FLAGS.seeds))
    groups = tuple(dataclasses.replace(g, seeds=seeds) for g in groups)
  if FLAGS.lanes:
    groups = tuple(dataclasses.replace(g, lanes=FLAGS.lanes) for g in groups)
  run_strategies = {g.key: g.strategies for g in groups}
  if FLAGS.strategies is not None:
    known = sorted({s for g in groups for s in g.strategies})
    chosen = check_names("--strategies", FLAGS.strategies, known)
    run_strategies = {g.key: tuple(s for s in g.strategies if s in chosen) for g in groups}
    empty = [k for k, chosen in run_strategies.items() if not chosen]
    if empty and not FLAGS.report_only:
      _common.fail(
          f"--strategies={','.join(FLAGS.strategies)}: no strategy left to run in "
          f"{', '.join(empty)} (its strategies: "
          + "; ".join(f"{g.key}: {', '.join(g.strategies)}" for g in groups if g.key in empty)
          + "); drop it from --groups"
      )
  for flag in ("budget_minutes", "budget_lane_epochs"):
    value = getattr(FLAGS, flag)
    if value is None:
      continue
    if FLAGS.budget != "minutes":
      _common.fail(f"--{flag} sets the equal-compute experiment's budget: add --budget=minutes")
    if not math.isfinite(value) or value <= 0:
      _common.fail(f"--{flag}={value}: must be a positive number")
  if FLAGS.budget_minutes or FLAGS.budget_lane_epochs:
    groups = tuple(
        dataclasses.replace(
            g,
            minutes=FLAGS.budget_minutes or g.minutes,
            lane_epochs=FLAGS.budget_lane_epochs,
        )
        for g in groups
    )
  if FLAGS.budget == "minutes":
    groups = tuple(dataclasses.replace(g, early_stop="median-guarded") for g in groups)
  if FLAGS.early_stop:
    groups = tuple(dataclasses.replace(g, early_stop=FLAGS.early_stop) for g in groups)
  return groups, run_strategies


def main(argv):
  _common.start(argv)
  from vmle_jax.config import backbone_config, resolve
  from vmle_jax.data import DataError, load_dataset
  from vmle_jax.engine import Engine
  from vmle_jax.memory.store import Store
  from vmle_jax.report import load_group, write_report
  from vmle_jax.search.budget import format_minutes
  from vmle_jax.search.comparison import Comparison, group_name, run_comparison
  from vmle_jax.search.study import export_trials_csv
  from vmle_jax.training import device_description

  groups, run_strategies = chosen_groups()
  # Everything a run needs is checked before anything is written: a bad flag or a missing data
  # set is one line and leaves no state behind.
  preset, mesh = _common.preset_and_mesh(FLAGS.preset)
  data_cache = {}
  for g in groups:
    if g.dataset not in data_cache:
      try:
        data_cache[g.dataset] = load_dataset(g.dataset, FLAGS.data_dir)
      except DataError as e:
        _common.fail(str(e))
  suffix = "" if FLAGS.budget == "trials" else f"-{FLAGS.budget}"
  workdir = FLAGS.workdir or os.path.join("runs", f"experiment-{FLAGS.scale}{suffix}")
  os.makedirs(workdir, exist_ok=True)
  store = Store(os.path.join(workdir, "experiment.sqlite"))
  preset, mesh = _common.preset_and_mesh(FLAGS.preset)
  t0 = time.time()
  deadline = t0 + 60 * FLAGS.time_limit_minutes if FLAGS.time_limit_minutes else None
  log_path = os.path.join(workdir, "log.txt")

  def log(s):
    with open(log_path, "a") as f:
      f.write(s + "\n")
    print(s, flush=True)

  sections, total, planned = [], 0, 0
  for g in groups:
    schedule = resolve(
        preset=preset, launcher_schedule={"max_epochs": g.max_epochs, "patience": g.patience}
    ).schedule
    data = data_cache[g.dataset]
    base = backbone_config(g.backbone)
    name = group_name(data, base) + (f"-{g.tag}" if g.tag else "")
    if not FLAGS.report_only:
      engine = Engine(data, schedule, log=None, mesh=mesh)
      run_comparison(
          Comparison(
              strategies=run_strategies[g.key],
              seeds=g.seeds,
              lanes=g.lanes,
              budget_trials=g.trials,
              budget_minutes=g.minutes,
              budget_lane_epochs=g.lane_epochs,
              early_stop=g.early_stop,
              group_tag=g.tag,
          ),
          data,
          base,
          store,
          engine,
          schedule,
          workdir,
          deadline=deadline,
          log=log,
      )
    # Studies still under way are left out: a part-run seed would count as one that
    # never reached the target.
    running = {
        s["name"]
        for s in store.studies()
        if s["settings"].get("group") == name and s["status"] != "finished"
    }
    runs = [r for r in load_group(store, name) if r.seed in g.seeds and r.name not in running]
    if running:
      log(f"{g.key}: left out of the tables while under way: {', '.join(sorted(running))}")
    if not runs:
      continue
    for study in store.studies():
      if study["settings"].get("group") == name:
        export_trials_csv(store, study["id"], os.path.join(workdir, study["name"], "trials.csv"))
    compute = g.minutes is not None or g.lane_epochs is not None
    done = sum(len(r.values) for r in runs)
    expected = len(g.seeds) * len(g.strategies) * (1 if compute else (g.trials or 0))
    if compute:  # counted in studies: the trials are what each budget allowed
      done = len(runs)
    seeds_run = sorted({r.seed for r in runs})
    budget = (
        " / ".join(
            x
            for x in (
                f"{format_minutes(g.minutes)} min" if g.minutes else "",
                f"{g.lane_epochs} lane-epochs" if g.lane_epochs else "",
            )
            if x
        )
        + " per study"
        if compute
        else f"{g.trials} trials"
    )
    table = write_report(
        runs,
        os.path.join(workdir, name),
        f"{g.key}, {FLAGS.scale} scale: {budget} in batches of "
        f"{g.lanes}, {g.max_epochs} epochs max, seeds {seeds_run} of "
        f"{list(g.seeds)}",
        device=device_description(),
    )
    total += done
    planned += expected
    sections += group_table(
        g.key, table, done, expected, f"{name}/report.md", "studies" if compute else "trials"
    )
    if running:
      sections += [f"Under way, not in the table: {', '.join(sorted(running))}.", ""]
  lines = [
      f"# Experiment ({FLAGS.scale} scale)",
      "",
      f"Device: {device_description()}.",
      f"Early stopping: {', '.join(sorted({g.early_stop for g in groups}))}. Means ± "
      "standard deviation over seeds; a seed "
      "that never reaches the target counts as the budget plus one.",
      "",
  ] + sections
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines))
  if FLAGS.publish_to:
    _common.publish(workdir, FLAGS.publish_to, databases=("experiment.sqlite",))
  print(
      f"experiment {FLAGS.scale} ({FLAGS.budget}): {total}/{planned} "
      f"{'trials' if FLAGS.budget == 'trials' else 'studies'} done, "
      f"{(time.time() - t0) / 60:.1f} min this run; results "
      f"{os.path.join(workdir, 'results.md')}; {_common.machine()}; {_common.today()}"
  )


if __name__ == "__main__":
  _common.run(main)
