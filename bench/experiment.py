"""The published experiment: agent vs grid vs random vs TPE, same engine, budget and seeds.

  python bench/experiment.py --scale=cpu   # SASRec on Beauty, 16 trials, 2 seeds, 6 epochs max
  python bench/experiment.py --scale=gpu   # SASRec and HSTU on Beauty, Sports, Toys, 48 trials,
                                           # 3 seeds, every strategy (about 3,500 trials)

Resumable: the SQLite file in --workdir is the state. Finished studies are
skipped and an interrupted one resumes, so the GPU version can run in
pieces (--time_limit_minutes stops before starting a study past the limit).
Writes one report per data set x backbone (report.md/.html and PNGs) and
results.md with all tables. Prints one line.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_enum("scale", "cpu", ["cpu", "gpu"], "Experiment size (see the module docstring).")
flags.DEFINE_string("workdir", None, "State and reports (default runs/experiment-<scale>).")
flags.DEFINE_float("time_limit_minutes", None, "Start no new study after this many minutes.")
flags.DEFINE_integer("lanes", None, "Lanes per bucket (default: 8 on CPU, 128 on GPU).")
flags.DEFINE_string("preset", None, "Host preset (tpu_configs/), e.g. gpu_1x.")
FLAGS = flags.FLAGS

SCALES = {
    # datasets, backbones, trials, seeds, max epochs, patience
    "cpu": (("beauty",), ("sasrec",), 16, (0, 1), 6, 2),
    "gpu": (("beauty", "sports", "toys"), ("sasrec", "hstu"), 48, (0, 1, 2), 100, 10),
}


def main(argv):
  _common.start(argv)
  from vmle_jax.config import Schedule, backbone_config
  from vmle_jax.data import load_dataset
  from vmle_jax.engine import Engine
  from vmle_jax.memory.store import Store
  from vmle_jax.report import load_group, write_report
  from vmle_jax.search.comparison import run_comparison
  from vmle_jax.training import device_description

  datasets, backbones, trials, seeds, epochs, patience = SCALES[FLAGS.scale]
  workdir = FLAGS.workdir or os.path.join("runs", f"experiment-{FLAGS.scale}")
  os.makedirs(workdir, exist_ok=True)
  store = Store(os.path.join(workdir, "experiment.sqlite"))
  schedule = Schedule(max_epochs=epochs, patience=patience)
  mesh = None
  if FLAGS.preset:
    from vmle_jax.engine.presets import load_preset, preset_mesh
    preset = load_preset(FLAGS.preset)
    schedule = dataclasses.replace(schedule, compute_dtype=preset.compute_dtype,
                                   eval_batch=int(preset.eval_batch),
                                   item_chunk=int(preset.item_chunk))
    mesh = preset_mesh(preset)
  lanes = FLAGS.lanes or (8 if FLAGS.scale == "cpu" else 128)
  t0 = time.time()
  deadline = t0 + 60 * FLAGS.time_limit_minutes if FLAGS.time_limit_minutes else None
  log_path = os.path.join(workdir, "log.txt")

  def log(s):
    with open(log_path, "a") as f:
      f.write(s + "\n")
    print(s, flush=True)

  tables = []
  for name in datasets:
    data = load_dataset(name, FLAGS.data_dir)
    engine = Engine(data, schedule, log=None, mesh=mesh)
    for backbone in backbones:
      base = backbone_config(backbone)
      group = run_comparison(data, base, store, engine, lanes, schedule, workdir, trials, seeds,
                             log=log, deadline=deadline)
      runs = load_group(store, group)
      done = sum(len(r.values) for r in runs)
      table = write_report(runs, os.path.join(workdir, group),
                           f"{name} / {backbone} ({FLAGS.scale} scale: {trials} trials, "
                           f"{len({r.seed for r in runs})} of {len(seeds)} seeds run, "
                           f"{epochs} epochs max)",
                           device=device_description())
      tables.append((group, done, table))
  lines = [f"# Experiment ({FLAGS.scale} scale)", "",
           f"Device: {device_description()}.", ""]
  total_trials = 0
  for group, done, table in tables:
    total_trials += done
    lines += [f"## {group} ({done} trials)", "", f"[report]({group}/report.md)", "",
              "| strategy | best val NDCG@10 | test NDCG@10 | trials to target | reached | "
              "trials/hour |", "|---|---|---|---|---|---|"]
    for s, row in table["strategies"].items():
      fmt = lambda v, spec: "-" if v is None else spec.format(v)  # noqa: E731
      lines.append(f"| {s} | {fmt(row['best_valid_ndcg10'], '{:.4f}')} | "
                   f"{fmt(row['test_ndcg10'], '{:.4f}')} | "
                   f"{fmt(row['trials_to_target'], '{:.1f}')} | {row['reached']}/{row['seeds']} | "
                   f"{fmt(row['trials_per_hour'], '{:.0f}')} |")
    lines.append("")
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines))
  expected = len(datasets) * len(backbones) * len(seeds) * 4 * trials
  print(f"experiment {FLAGS.scale}: {total_trials}/{expected} trials done, "
        f"{(time.time() - t0) / 60:.1f} min this run; results {os.path.join(workdir, 'results.md')}; "
        f"{_common.machine()}; {_common.today()}")


if __name__ == "__main__":
  app.run(main)
