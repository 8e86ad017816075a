r"""vmle-tune: the agent tunes a backbone on a data set, learning as it goes.

  vmle-tune                                   # synthetic data, heuristic planner (offline)
  vmle-tune --dataset=beauty --data_dir=../shared/data --budget_trials=24 \
      --db=runs/memory.sqlite --study=beauty-agent
  GEMINI_API_KEY=... vmle-tune --planner=gemini --dataset=toys ...
  vmle-tune --dataset=toys --summary_from=runs/sasrec-summary.json   # transfer

Each round: recall the memory, propose a batch (the first from the playbook:
priors read off the data's statistics; then moves on evidence, each bucket
filled with rate variants of one structure), validate, train the batch as
lanes, read the curves and reflect, write insights. At the end the study's
insights are distilled into the backbone's cognition summary.
"""

from __future__ import annotations

import os
import time

from absl import flags

from vmle_jax.launch import common

common.define_data_flags()
# Defaults sized so that the bare `vmle-tune` (synthetic data) takes minutes on a laptop.
common.define_schedule_flags(default_epochs=15)
common.define_study_flags(default_trials=12)
common.define_planner_flags()
flags.DEFINE_string("gemini_base_url", None, "Gemini API base URL (for proxies and tests).")
flags.DEFINE_string("transcript", None, "Recorded transcript.jsonl for --planner=replay.")
flags.DEFINE_string(
    "summary_from",
    None,
    "Import a cognition summary (JSON from `vmle-memory export`) before tuning.",
)
flags.DEFINE_integer("budget_tokens", None, "Stop when the planner has used this many tokens.")
flags.DEFINE_integer("max_retries", 2, "Re-asks after a rejected planner answer.")
flags.DEFINE_float(
    "tpe_share",
    0.5,  # agent-tpe: at least the seeded control on most seeds of every group measured
    "Share of every batch after the first whose lanes TPE proposes from the study's trials "
    "(0.5 with 4 lanes: two lanes, vmle-compare's agent-tpe; 0: the planner plans every "
    "lane, vmle-compare's agent). In [0, 1). docs/results/experiment-cpu-minutes says why.",
)
flags.register_validator(
    "tpe_share", lambda v: 0.0 <= v < 1.0, "--tpe_share must be in [0, 1): the planner keeps a lane"
)
flags.DEFINE_list(
    "dims",
    None,
    "Searched dimensions (default: the backbone's whole space). Names: " + common.dimension_names(),
)
common.define_config_flags()
FLAGS = flags.FLAGS


def main(argv) -> None:
  common.reject_positional(argv)
  from vmle_jax.memory import summaries
  from vmle_jax.search.agent import AgentStrategy
  from vmle_jax.search.planners import Transcript, make_planner
  from vmle_jax.search.study import StudySpec

  common.check_planner_flags(FLAGS)
  setup = common.study_setup(FLAGS, FLAGS.dims)
  data, base, space, lanes = setup.data, setup.base, setup.space, setup.lanes
  name = FLAGS.study or common.safe_name(
      f"{data.name}-{base.backbone}-agent-{FLAGS.planner}-s{FLAGS.seed}"
  )
  workdir = FLAGS.workdir or os.path.join("runs", name)
  try:
    planner = make_planner(
        FLAGS.planner,
        FLAGS.model,
        FLAGS.transcript,
        FLAGS.gemini_base_url,
        timeout_s=FLAGS.llm_timeout_s,
        attempts=FLAGS.llm_retries,
    )
  except Exception as e:  # missing key, missing package, missing transcript
    common.fail(str(e))
  spec = StudySpec(
      name=name,
      backbone=base.backbone,
      strategy=f"agent:{FLAGS.planner}",
      budget_trials=common.trial_cap(FLAGS),
      budget_minutes=FLAGS.budget_minutes,
      budget_lane_epochs=FLAGS.budget_lane_epochs,
      budget_tokens=FLAGS.budget_tokens,
      lanes=lanes,
      seed=FLAGS.seed,
      dims=tuple(space.names),
      early_stop=FLAGS.early_stop,
  )
  if FLAGS.summary_from:  # checked before anything is written
    common.summary_from_flag(FLAGS.summary_from, base.backbone, data, setup.schedule.max_epochs)
  store = common.open_store(FLAGS.db)  # a broken file is one line (common.run_main)
  if FLAGS.summary_from and store is not None:
    version = summaries.import_summary(store, FLAGS.summary_from)
    print(f"imported cognition summary {FLAGS.summary_from} as version {version}")
  transcript = Transcript(os.path.join(workdir, "transcript.jsonl"))
  strategy = AgentStrategy(
      planner,
      space,
      max_retries=FLAGS.max_retries,
      transcript=transcript,
      planner_budget_s=None if FLAGS.planner_minutes is None else 60 * FLAGS.planner_minutes,
      tpe_share=FLAGS.tpe_share,
      seed=FLAGS.seed,
  )
  print(
      f"study {name!r}: agent over {', '.join(space.names)}; budget "
      f"{spec.budget.describe()}; {lanes} lanes per bucket on {common.device_summary()}"
  )
  t0 = time.perf_counter()
  summary = common.run_study_from_flags(FLAGS, setup, spec, store, strategy, workdir)
  if store is None:
    return
  insights = store.insights(study_id=store.study(name)["id"])
  print(
      f"done in {time.perf_counter() - t0:.0f} s: {summary['trials']} trials, "
      f"{len(insights)} insights, cognition summary version "
      f"{summary.get('cognition_summary_version')}; memory {FLAGS.db}; results {workdir}"
  )


def run() -> None:
  common.run_main(main)


if __name__ == "__main__":
  run()
