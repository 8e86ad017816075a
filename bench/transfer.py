"""Does a cognition summary learned on other data sets cut the trials the agent needs on Toys?

Tunes SASRec with the heuristic agent on the source data sets (default
Beauty and Sports, one memory), distills and exports the cognition summary,
then tunes Toys four ways, each in a fresh memory and with the same budget:

  agent+summary   the agent with the summary imported (--summary_from)
  agent           the agent alone (its playbook only)
  tpe-warm        TPE warm-started, as an Optuna user would: the default, then the
                  best configuration of each source study enqueued first
  tpe             TPE alone

Prints trials (counted at batch ends) to 98% of the best validation NDCG@10
any of them found, and draws the best-so-far curves to transfer.png; the
summary (JSON and markdown), transfer.json and every study's trials.csv are
written beside. Resumable: the memories live in --workdir.

  python bench/transfer.py --scale=cpu     # 16 trials per study in batches of 4, 5 epochs max
  python bench/transfer.py --scale=gpu     # 48 trials per study in batches of 16, 50 epochs max

A study with exactly the settings of a finished study in another memory
(--reuse_from, e.g. the experiment's: the agent alone and TPE alone on Toys,
the agent on Beauty, seed for seed) is copied from it instead of trained
again; every setting is compared first (the resume check) and the copy
records where it came from.

  python bench/transfer.py --scale=cpu --reuse_from=runs/experiment-cpu/experiment.sqlite

The summary is distilled from the source studies' trials as they stand, each
study's insights recounted by the current evidence rules first, and written
once per workdir. `--arms` runs a subset of the arms: once the summary is
written, a second process can take the other arms (two share two cores), and
a last run with every arm reports them all.

  python bench/transfer.py --scale=cpu --arms=agent+summary,tpe-warm   # sources, then two arms
  python bench/transfer.py --scale=cpu --arms=agent,tpe   # beside it, once sasrec-summary.json exists

Prints one line: trials to target and best per arm, then each arm's study time (training
and planner, from the store, whichever invocation trained it) and lane-epochs.

At equal minutes, leaving the target out (bench/_transfer_minutes.py; state in
runs/transfer-minutes, resumable, one core per study):

  python bench/transfer.py --budget=minutes            # toys, sports, ml-100k; seeds 0-2
  python bench/transfer.py --budget=minutes --targets=toys --arms=agent-summary

Each target's summary is distilled from every finished SASRec study of the other shared
data sets in --sources_from (the committed trials-budget experiment and the equal-minutes
one), agents and baselines alike; the agent-alone and TPE arms are the equal-minutes
experiment's own studies, copied from --reuse_from when finished there. The summary of
all the shared data sets (sasrec-summary.json) is written beside, for a new data set.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

# The arms of the experiment (each built from a registered strategy, search/strategies.py).
ARMS = ("agent+summary", "agent", "tpe-warm", "tpe")

flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_enum("scale", "cpu", ["cpu", "gpu"], "Budget preset (see the module docstring).")
flags.DEFINE_list("sources", ["beauty", "sports"], "Data sets the summary is learned on.")
flags.DEFINE_string("target_dataset", "toys", "Data set the summary is used on.")
flags.DEFINE_integer("budget_trials", None, "Override the preset's trials per study.")
flags.DEFINE_integer("max_epochs", None, "Override the preset's epoch cap per trial.")
flags.DEFINE_integer("lanes", None, "Override the preset's lanes per bucket.")
flags.DEFINE_integer("seed", 0, "Seed of every study (TPE's sampler, trial seeds).")
flags.DEFINE_string("workdir", "runs/transfer", "Memories, summary, curves and results.")
flags.DEFINE_float("target", 0.98, "Fraction of the best value that counts as reached.")
flags.DEFINE_string(
    "reuse_from",
    None,
    "A memory (bench/experiment.py's) whose finished studies cmp-<data>-sasrec-"
    "{agent,tpe}-s<seed> are copied in place of the identical studies here.",
)
flags.DEFINE_enum(
    "budget",
    "trials",
    ["trials", "minutes"],
    "trials: the same trials per arm (one target, --target_dataset); minutes: equal minutes "
    "per arm under the equal-minutes experiment's groups, every target left out in turn.",
)
flags.DEFINE_list("targets", ["toys", "sports", "ml-100k"], "With --budget=minutes: targets.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "With --budget=minutes: seeds of every arm.")
flags.DEFINE_list(
    "sources_from",
    [
        os.path.join("docs", "results", "experiment-cpu", "experiment.sqlite.gz"),
        os.path.join("runs", "experiment-cpu-minutes", "experiment.sqlite"),
    ],
    "With --budget=minutes: memories whose finished studies of the source data sets the "
    "summaries and the warm starts are learned from (a .gz is read from a copy).",
)
flags.DEFINE_float(
    "time_limit_minutes", None, "With --budget=minutes: start no study past this many minutes."
)
flags.DEFINE_boolean("report_only", False, "With --budget=minutes: report without training.")
flags.DEFINE_list(
    "arms",
    None,
    "Arms to run on the target (a subset lets two processes share the cores; the "
    "report compares the arms given). Default: " + ", ".join(ARMS) + " (with --budget=minutes: "
    "agent-summary, agent, tpe-warm, tpe).",
)
flags.DEFINE_list(
    "rerun_arms",
    [],
    "With --budget=minutes: arms whose finished studies of --targets x --seeds train again "
    "under the current code, once; the earlier ones are kept as <name>-retired, out of the "
    "report.",
)
flags.DEFINE_string(
    "publish_to",
    None,
    "Copy the memories, summary, curves and per-trial CSVs "
    "here (e.g. docs/results/transfer) for committing.",
)
FLAGS = flags.FLAGS

SCALES = {"cpu": (16, 5, 2, 4), "gpu": (48, 50, 5, 16)}  # trials, max epochs, patience, lanes


def main(argv):
  _common.start(argv)
  if FLAGS.budget == "minutes":
    return main_minutes()
  from vmle_jax.config import Schedule, TrialConfig, backbone_config
  from vmle_jax.data import load_dataset
  from vmle_jax.engine import Engine
  from vmle_jax.memory import summaries
  from vmle_jax.memory.store import Store
  from vmle_jax.report.data import study_run
  from vmle_jax.search.agent import AgentStrategy
  from vmle_jax.search.planners import HeuristicPlanner
  from vmle_jax.search.space import SearchSpace
  from vmle_jax.search.strategies import make_strategy
  from vmle_jax.memory.records import best_trial
  from vmle_jax.search.comparison import group_name
  from vmle_jax.search.study import (
      StudySpec,
      export_trials_csv,
      run_study,
      setting_changes,
      study_settings,
  )

  trials, epochs, patience, lanes = SCALES[FLAGS.scale]
  trials = FLAGS.budget_trials or trials
  epochs = FLAGS.max_epochs or epochs
  lanes = FLAGS.lanes or lanes
  schedule = Schedule(max_epochs=epochs, patience=patience)
  space = SearchSpace.for_backbone("sasrec", base=backbone_config("sasrec", seed=FLAGS.seed))
  os.makedirs(FLAGS.workdir, exist_ok=True)
  log_path = os.path.join(FLAGS.workdir, "log.txt")
  t0 = time.perf_counter()

  def log(s):
    with open(log_path, "a") as f:
      f.write(s + "\n")
    print(s, flush=True)

  datasets = {}
  reuse = Store(FLAGS.reuse_from) if FLAGS.reuse_from else None

  def copy_if_identical(store, spec, data, strategy_for):
    """Copies the reuse memory's study that computed exactly this one; False if none did."""
    kind = {"agent:heuristic": "agent", "tpe": "tpe"}.get(spec.strategy)
    if reuse is None or kind is None or store.study(spec.name) is not None:
      return False
    twin_name = f"cmp-{group_name(data, space.base)}-{kind}-s{spec.seed}"
    twin = reuse.study(twin_name)
    if twin is None or twin["status"] != "finished":
      log(f"{spec.name}: no finished {twin_name} in {reuse.path}; trained here")
      return False
    sha = reuse.conn.execute(
        "SELECT sha256 FROM datasets WHERE id = ?", (twin["dataset_id"],)
    ).fetchone()[0]
    same_data = twin["dataset_id"] if sha == data.fingerprint()["sha256"] else -1
    budget, settings = study_settings(spec, space, schedule)
    changes = setting_changes(twin, spec, budget, settings, same_data)
    if changes:
      log(f"{spec.name}: {twin_name} differs in {', '.join(changes)}; trained here")
      return False
    store.copy_study(reuse, twin_name, spec.name)
    log(f"{spec.name}: copied from {twin_name} in {reuse.path} (identical settings)")
    if kind == "agent":  # what the end of the study would have written: insights, summary
      strategy = strategy_for(store)
      strategy.bind(store, store.study(spec.name), data)
      log(f"{spec.name}: {strategy.rederive_insights()} insights re-derived from its trials")
      strategy.finish()
    return True

  def run(db, dataset, name, strategy_for, label):
    store = Store(os.path.join(FLAGS.workdir, db))
    if dataset not in datasets:
      datasets[dataset] = load_dataset(dataset, FLAGS.data_dir)
    data = datasets[dataset]
    spec = StudySpec(
        name=name,
        strategy=label,
        budget_trials=trials,
        lanes=lanes,
        seed=FLAGS.seed,
        early_stop="median",
    )
    copy_if_identical(store, spec, data, strategy_for)
    existing = store.study(name)
    if existing is None or existing["status"] != "finished":
      log(f"== {name} on {dataset}: {label}, {trials} trials, batches of {lanes}")
      run_study(
          spec,
          data,
          store,
          strategy_for(store),
          space,
          schedule,
          engine=Engine(data, schedule, log=None),
          resume=existing is not None,
          workdir=os.path.join(FLAGS.workdir, name),
          log=log,
          engine_log=False,
      )
    study = store.study(name)
    export_trials_csv(store, study["id"], os.path.join(FLAGS.workdir, name, "trials.csv"))
    return store, study_run(study, store.finished_trials(study["id"]))

  agent = lambda store: AgentStrategy(HeuristicPlanner(), space, log=log)  # noqa: E731
  best_configs = []
  source = None
  for dataset in FLAGS.sources:
    source, r = run("source.sqlite", dataset, f"source-{dataset}", agent, "agent:heuristic")
    best = best_trial(source.finished_trials(source.study(f"source-{dataset}")["id"]))
    best_configs.append(TrialConfig.from_dict(best.config))
  summary_path = os.path.join(FLAGS.workdir, "sasrec-summary.json")
  if not os.path.exists(summary_path):
    # The summary as the sources' trials stand: each study's insights re-derived by the
    # current evidence rules (a memory from before a change of them reads anew, and a study
    # copied from a shared memory gets back rows another study of its data set took
    # over), then distilled. Written once: the target arms, run now or resumed later,
    # share it.
    for dataset in FLAGS.sources:
      strategy = agent(source)
      strategy.bind(source, source.study(f"source-{dataset}"), datasets[dataset])
      n = strategy.rederive_insights()
      log(f"source-{dataset}: {n} insights re-derived from its trials")
      strategy.finish()
  summaries.export_summary(source, "sasrec", summary_path)

  def agent_with_summary(store):
    if store.summary("sasrec") is None:
      summaries.import_summary(store, summary_path)
    return AgentStrategy(HeuristicPlanner(), space, log=log)

  warm = [space.validate(space.values_of(c)) for c in best_configs]
  arms = {
      "agent+summary": (agent_with_summary, "agent:heuristic+summary"),
      "agent": (agent, "agent:heuristic"),
      "tpe-warm": (
          lambda store: make_strategy("tpe", space, FLAGS.seed, lanes=lanes, warm_start=warm),
          "tpe-warm",
      ),
      "tpe": (lambda store: make_strategy("tpe", space, FLAGS.seed, lanes=lanes), "tpe"),
  }
  results = {}
  chosen_arms = FLAGS.arms or list(ARMS)
  unknown = sorted(set(chosen_arms) - set(ARMS))
  if unknown:
    raise app.UsageError(f"--arms: {', '.join(unknown)} not one of {', '.join(ARMS)}")
  for arm in [a for a in ARMS if a in chosen_arms]:
    factory, label = arms[arm]
    name = f"{FLAGS.target_dataset}-{arm.replace('+', '-')}"
    _, results[arm] = run(f"{name}.sqlite", FLAGS.target_dataset, name, factory, label)
  best = max(v for r in results.values() for v in r.values if v is not None)
  target = FLAGS.target * best
  reached = {arm: r.trials_to(target) for arm, r in results.items()}
  out = {
      "scale": FLAGS.scale,
      "sources": FLAGS.sources,
      "target_dataset": FLAGS.target_dataset,
      "trials_per_study": trials,
      "lanes": lanes,
      "max_epochs": epochs,
      "best": best,
      "target": target,
      "arms": {
          arm: {
              "values": r.values,
              "batches": r.batches,
              "epochs": r.epochs,
              "trials_to_target": reached[arm],
              "best": max(v for v in r.values if v is not None),
              # What the study cost, from the store (whichever invocation trained it):
              # training plus planner wall-clock, and lane-epochs.
              "seconds": round(max(r.ends, default=0.0), 1),
              "lane_epochs": sum(r.epochs),
          }
          for arm, r in results.items()
      },
      "warm_start": [c.to_dict() for c in warm],
      "run_seconds": round(time.perf_counter() - t0, 1),
  }
  with open(os.path.join(FLAGS.workdir, "transfer.json"), "w") as f:
    json.dump(out, f, indent=2)
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6.4, 3.8))
  for arm, r in results.items():
    ys = [b if b > float("-inf") else None for b in r.best_at_batch_ends()]
    ax.plot(range(1, len(ys) + 1), ys, marker="o", ms=3, label=arm, drawstyle="steps-post")
  ax.axhline(target, color="grey", ls="--", lw=1, label=f"{FLAGS.target:.0%} of best")
  ax.set_xlabel("trials (results counted at the end of each batch)")
  ax.set_ylabel("best validation NDCG@10")
  ax.set_title(
      f"{FLAGS.target_dataset}, SASRec: summary from {'+'.join(FLAGS.sources)} "
      f"({FLAGS.scale} scale)",
      fontsize=10,
  )
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(FLAGS.workdir, "transfer.png"), dpi=120)
  if FLAGS.publish_to:
    dbs = [f for f in os.listdir(FLAGS.workdir) if f.endswith(".sqlite")]
    _common.publish(FLAGS.workdir, FLAGS.publish_to, databases=dbs)
  text = lambda arm: (
      str(reached[arm])
      if reached[arm] is not None  # noqa: E731
      else f"not reached in {len(results[arm].values)}"
  )
  print(
      f"transfer {FLAGS.target_dataset} ({FLAGS.scale}: {trials} trials/study in batches of "
      f"{lanes}, {epochs} epochs max): trials to {FLAGS.target:.0%} of best val NDCG@10 "
      f"({target:.4f}): "
      + ", ".join(f"{arm} {text(arm)}" for arm in results)
      + "; best "
      + ", ".join(f"{arm} {out['arms'][arm]['best']:.4f}" for arm in results)
      + "; minutes (lane-epochs) "
      + ", ".join(
          f"{arm} {out['arms'][arm]['seconds'] / 60:.0f} ({out['arms'][arm]['lane_epochs']})"
          for arm in results
      )
      + f"; this run {out['run_seconds']:.0f} s; {_common.machine()}; {_common.today()}"
  )


def main_minutes():
  """--budget=minutes: every target left out in turn (bench/_transfer_minutes.py)."""
  import time

  import _transfer_minutes as tm
  from vmle_jax.config import TrialConfig, backbone_config, resolve
  from vmle_jax.data import DataError, load_dataset
  from vmle_jax.engine import Engine
  from vmle_jax.launch.common import check_names, check_seeds
  from vmle_jax.memory import summaries
  from vmle_jax.memory.store import Store
  from vmle_jax.report import load_group, write_report
  from vmle_jax.report.data import clock_rules
  from vmle_jax.search.comparison import Comparison, group_name, run_comparison
  from vmle_jax.search.space import SearchSpace
  from vmle_jax.search.study import export_trials_csv
  from vmle_jax.training import device_description

  targets = check_names("--targets", FLAGS.targets, tm.TARGETS)
  seeds = tuple(check_seeds("--seeds", FLAGS.seeds))
  arms = check_names("--arms", [a.replace("+", "-") for a in FLAGS.arms or tm.ARMS], tm.ARMS)
  rerun = (
      check_names("--rerun_arms", FLAGS.rerun_arms, [a for a in arms if a not in tm.REUSED])
      if FLAGS.rerun_arms
      else []
  )
  if FLAGS.report_only and rerun:
    _common.fail("--rerun_arms trains: it cannot go with --report_only")
  for path in FLAGS.sources_from:
    if not os.path.exists(path):
      _common.fail(f"--sources_from: no memory at {path}")
  data = {}
  for t in targets:
    try:
      data[t] = load_dataset(t, FLAGS.data_dir)
    except DataError as e:
      _common.fail(str(e))
  workdir = (
      FLAGS.workdir
      if FLAGS.workdir != "runs/transfer"
      else os.path.join("runs", "transfer-minutes")
  )
  os.makedirs(workdir, exist_ok=True)
  store = Store(os.path.join(workdir, "transfer.sqlite"))
  store.start_trial_ids_after(tm.TRIAL_ID_BASE)
  reuse = FLAGS.reuse_from or os.path.join("runs", "experiment-cpu-minutes", "experiment.sqlite")
  reuse = reuse if os.path.exists(reuse) else None
  tm.share_machine_price(store, reuse, print)
  log_path = os.path.join(workdir, "log.txt")
  t0 = time.time()
  deadline = t0 + 60 * FLAGS.time_limit_minutes if FLAGS.time_limit_minutes else None

  def log(s):
    with open(log_path, "a") as f:
      f.write(s + "\n")
    print(s, flush=True)

  base = backbone_config("sasrec")
  space = SearchSpace.for_backbone("sasrec", base=base)
  everything = sorted({d for t in tm.TARGETS for d in (t, *tm.TARGETS[t])})
  whole = os.path.join(workdir, "sasrec-summary.json")
  if not os.path.exists(whole) and not FLAGS.report_only:
    log(f"summary of every shared data set ({', '.join(everything)}):")
    tm.distill_left_out(
        FLAGS.sources_from, tuple(everything), space, os.path.join(workdir, "scratch"), whole, log
    )
  sections, line = [], []
  for t in targets:
    sources, g = tm.TARGETS[t], tm.group_of(t)
    summary_path = os.path.join(workdir, f"{t}-summary.json")
    sources_path = os.path.join(workdir, f"{t}-warm-start.json")
    if not os.path.exists(summary_path) and not FLAGS.report_only:
      log(f"{t}: summary from {', '.join(sources)}:")
      tm.write_sources(sources_path, tm.source_bests(FLAGS.sources_from, sources))
      tm.distill_left_out(  # written last: its file is what says both are there
          FLAGS.sources_from, sources, space, os.path.join(workdir, "scratch"), summary_path, log
      )
    if not FLAGS.report_only and os.path.exists(summary_path):
      tm.with_source_bests(summary_path, sources_path, log)
    group = group_name(data[t], base)
    for arm in rerun:
      for seed in seeds:
        name = f"cmp-{group}-{arm}-s{seed}"
        found = store.study(name)
        if store.study(f"{name}-retired") is not None:  # trained again already: kept
          log(f"{name}: already trained again under --rerun_arms; kept")
        elif found is not None and found["status"] == "finished":
          log(
              f"{name}: trained again under the current code; the earlier run is now "
              f"{store.retire_study(name)}"
          )
    for arm in tm.REUSED:
      for seed in seeds:
        if arm in arms:
          tm.copy_reused(store, reuse, f"cmp-{group}-{arm}-s{seed}", log)
    schedule = resolve(
        launcher_schedule={"max_epochs": g.max_epochs, "patience": g.patience}
    ).schedule
    if not FLAGS.report_only and os.path.exists(summary_path):
      summary = summaries.read_summary(summary_path)
      with open(sources_path) as f:
        warm = [
            space.validate(space.values_of(TrialConfig.from_dict(b["config"])))
            for b in json.load(f)
        ]
      engine = Engine(data[t], schedule, log=None)
      for arm in [a for a in tm.ARMS if a in arms]:
        missing = [seed for seed in seeds if store.study(f"cmp-{group}-{arm}-s{seed}") is None]
        if arm in tm.REUSED and missing:
          log(f"{t}/{arm}: seeds {missing} not in the experiment memory: trained here")
        run_comparison(
            Comparison(
                strategies=(arm,),
                seeds=seeds,
                lanes=g.lanes,
                budget_trials=g.trials,
                budget_minutes=g.minutes,
                early_stop="median-guarded",
                summary=summary if arm == "agent-summary" else None,
                tpe_warm_start=warm if arm == "tpe-warm" else (),
            ),
            data[t],
            base,
            store,
            engine,
            schedule,
            workdir,
            deadline=deadline,
            log=log,
        )
    running = {
        s["name"]
        for s in store.studies()
        if s["settings"].get("group") == group and s["status"] != "finished"
    }
    runs = [r for r in load_group(store, group) if r.seed in seeds and r.name not in running]
    if not runs:
      continue
    for study in store.studies():
      if study["settings"].get("group") == group:
        export_trials_csv(store, study["id"], os.path.join(workdir, study["name"], "trials.csv"))
    write_report(
        runs,
        os.path.join(workdir, group),
        f"{t} / sasrec, transfer at {g.minutes:g} min per study (summary from "
        f"{', '.join(sources)})",
        device=device_description(),
    )
    rows = tm.seed_table(runs, g.minutes, FLAGS.target)
    rules = tm.rules_on_target(store, f"cmp-{group}-agent-summary-s{min(seeds)}")
    sections += tm.markdown(t, sources, g, rows, rules, summary_path, clock_rules(runs))
    if running:
      sections += [f"Under way, not in the table: {', '.join(sorted(running))}.", ""]
    line.append(
        f"{t}: "
        + ", ".join(
            f"{arm} {_mean_text([r['best'] for r in rows if r['arm'] == arm])}"
            for arm in tm.ARMS
            if any(r["arm"] == arm for r in rows)
        )
    )
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(
        "\n".join(
            [
                "# Transfer at equal minutes, leaving the target out",
                "",
                f"Device: {device_description()}. Best validation NDCG@10 at the budget per "
                "arm and seed; the agent-alone and TPE arms are the equal-minutes experiment's "
                "studies.",
                "",
            ]
            + sections
        )
    )
  if FLAGS.publish_to:
    _common.publish(workdir, FLAGS.publish_to, databases=("transfer.sqlite",))
  print(
      "transfer at equal minutes: "
      + ("; ".join(line) or "no finished study yet")
      + f"; this run {(time.time() - t0) / 60:.1f} min; {_common.machine()}; {_common.today()}"
  )


def _mean_text(values) -> str:
  import numpy as np

  xs = [v for v in values if v is not None]
  if not xs:
    return "-"
  return f"{np.mean(xs):.4f}±{np.std(xs):.4f} (n={len(xs)})"


if __name__ == "__main__":
  _common.run(main)
