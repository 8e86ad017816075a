"""Does a cognition summary learned on Beauty and Sports help the agent tune Toys?

Tunes SASRec with the heuristic planner on Beauty and on Sports (one memory),
distills and exports the cognition summary, then tunes Toys twice in fresh
memories: with the summary imported (--summary_from) and without. Prints the
trials each Toys run needed to reach 98% of the best validation NDCG@10 that
either run found, and draws both best-so-far curves to transfer.png.
Resumable: the memories live in --workdir, so a rerun continues where it stopped.

  python bench/transfer.py --scale=cpu     # 16 trials per study, 8 epochs max
  python bench/transfer.py --scale=gpu     # 24 trials per study, 50 epochs max

Prints one line.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_enum("scale", "cpu", ["cpu", "gpu"], "Budget preset (see the module docstring).")
flags.DEFINE_integer("budget_trials", None, "Override the preset's trials per study.")
flags.DEFINE_integer("max_epochs", None, "Override the preset's epoch cap per trial.")
flags.DEFINE_integer("lanes", 8, "Lanes per bucket.")
flags.DEFINE_string("workdir", "runs/transfer", "Memories, summary, curves and results.")
flags.DEFINE_float("target", 0.98, "Fraction of the best value that counts as reached.")
FLAGS = flags.FLAGS

SCALES = {"cpu": (16, 8, 3), "gpu": (24, 50, 5)}  # trials, max epochs, patience


def trials_to_reach(values: list[float], target: float) -> int | None:
  """1-based number of trials after which the best-so-far first reaches target."""
  best = float("-inf")
  for i, v in enumerate(values, 1):
    best = max(best, v if v is not None else float("-inf"))
    if best >= target:
      return i
  return None


def _reached(n: int | None, values: list) -> str:
  return str(n) if n is not None else f"not reached in {len(values)}"


def best_so_far(values):
  out, best = [], float("-inf")
  for v in values:
    best = max(best, v if v is not None else float("-inf"))
    out.append(best)
  return out


def main(argv):
  _common.start(argv)
  from vmle_jax.config import Schedule, TrialConfig
  from vmle_jax.data import load_dataset
  from vmle_jax.memory import summaries
  from vmle_jax.memory.store import Store
  from vmle_jax.search.agent import AgentStrategy
  from vmle_jax.search.planners import HeuristicPlanner
  from vmle_jax.search.space import SearchSpace
  from vmle_jax.search.study import StudySpec, run_study

  trials, epochs, patience = SCALES[FLAGS.scale]
  trials = FLAGS.budget_trials or trials
  epochs = FLAGS.max_epochs or epochs
  schedule = Schedule(max_epochs=epochs, patience=patience)
  space = SearchSpace.for_backbone("sasrec", base=TrialConfig())
  os.makedirs(FLAGS.workdir, exist_ok=True)
  log_path = os.path.join(FLAGS.workdir, "log.txt")
  t0 = time.perf_counter()

  def log(s):
    with open(log_path, "a") as f:
      f.write(s + "\n")
    print(s, flush=True)

  def study(db, dataset, name, summary_from=None):
    store = Store(os.path.join(FLAGS.workdir, db))
    data = load_dataset(dataset, FLAGS.data_dir)
    existing = store.study(name)
    if existing is None and summary_from:
      summaries.import_summary(store, summary_from)
    if existing is None or existing["status"] != "finished":
      spec = StudySpec(name=name, strategy="agent:heuristic", budget_trials=trials,
                       lanes=FLAGS.lanes)
      run_study(spec, data, store, AgentStrategy(HeuristicPlanner(), space, log=log), space,
                schedule, resume=existing is not None,
                workdir=os.path.join(FLAGS.workdir, name), log=log, engine_log=False)
    rows = store.finished_trials(store.study(name)["id"])
    return store, [(r["valid"] or {}).get("NDCG@10") if r["status"] != "diverged" else None
                   for r in rows]

  source, _ = study("source.sqlite", "beauty", "beauty")
  study("source.sqlite", "sports", "sports")
  summary_path = os.path.join(FLAGS.workdir, "sasrec-summary.json")
  summaries.export_summary(source, "sasrec", summary_path)
  _, with_summary = study("toys-with.sqlite", "toys", "toys-with", summary_from=summary_path)
  _, without = study("toys-without.sqlite", "toys", "toys-without")
  best = max(v for v in with_summary + without if v is not None)
  target = FLAGS.target * best
  n_with, n_without = trials_to_reach(with_summary, target), trials_to_reach(without, target)
  result = {"scale": FLAGS.scale, "trials_per_study": trials, "max_epochs": epochs,
            "best": best, "target": target, "with_summary": with_summary,
            "without_summary": without, "trials_to_target_with": n_with,
            "trials_to_target_without": n_without,
            "seconds": round(time.perf_counter() - t0, 1)}
  with open(os.path.join(FLAGS.workdir, "transfer.json"), "w") as f:
    json.dump(result, f, indent=2)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 3.6))
  for values, label in ((with_summary, "with Beauty+Sports summary"), (without, "without")):
    ax.plot(range(1, len(values) + 1), best_so_far(values), marker="o", ms=3, label=label)
  ax.axhline(target, color="grey", ls="--", lw=1, label=f"{FLAGS.target:.0%} of best")
  ax.set_xlabel("trials")
  ax.set_ylabel("best validation NDCG@10")
  ax.set_title(f"Toys, SASRec, heuristic agent ({FLAGS.scale} scale)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(FLAGS.workdir, "transfer.png"), dpi=120)
  print(f"transfer toys ({FLAGS.scale}: {trials} trials/study, {epochs} epochs max): trials to "
        f"{FLAGS.target:.0%} of best val NDCG@10 ({target:.4f}): with summary "
        f"{_reached(n_with, with_summary)}, without {_reached(n_without, without)}; best with "
        f"{max(v for v in with_summary if v is not None):.4f}, without "
        f"{max(v for v in without if v is not None):.4f}; {result['seconds']:.0f} s; "
        f"{_common.machine()}; {_common.today()}")


if __name__ == "__main__":
  app.run(main)
