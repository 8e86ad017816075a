"""Test metrics of documented recipes on a benchmark, trained to early stopping.

  python bench/quality.py --dataset=beauty --recipe=sasrec-ssm
  python bench/quality.py --dataset=beauty --recipe=sasrec-bce

Prints one line each for validation and test: HR@5,10,20 and NDCG@5,10,20
(full ranking over all items, history not excluded), then the epochs and
wall-clock. Results also go to --workdir/results.json.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_string("dataset", "beauty", "Data set name or path.")
flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_string("recipe", "sasrec-ssm", "Recipe name (vmle_jax/recipes.py).")
flags.DEFINE_string("backbone", None, "Only check that the recipe is of this backbone.")
flags.DEFINE_integer("epochs", None, "Override the recipe's epoch cap.")
flags.DEFINE_string("workdir", None, "Output directory (default runs/quality-<dataset>-<recipe>).")
FLAGS = flags.FLAGS


def main(argv):
  _common.start(argv)
  from vmle_jax.data import load_dataset
  from vmle_jax.recipes import get_recipe
  from vmle_jax.training import format_metrics, train_and_evaluate

  recipe = get_recipe(FLAGS.recipe)
  if FLAGS.backbone and recipe.config.backbone != FLAGS.backbone:
    raise SystemExit(
        f"recipe {FLAGS.recipe} is a {recipe.config.backbone} recipe, " f"not {FLAGS.backbone}"
    )
  schedule = recipe.schedule
  if FLAGS.epochs:
    schedule = dataclasses.replace(schedule, max_epochs=FLAGS.epochs)
  data = load_dataset(FLAGS.dataset, FLAGS.data_dir)
  workdir = FLAGS.workdir or os.path.join("runs", f"quality-{data.name}-{FLAGS.recipe}")
  r = train_and_evaluate(recipe.config, data, schedule, workdir, log=lambda s: print(s, flush=True))
  tag = f"{FLAGS.recipe} {data.name}"
  print(f"quality {tag} valid: {format_metrics(r['valid'])}")
  print(f"quality {tag} test:  {format_metrics(r['test'])}")
  print(
      f"quality {tag}: best epoch {r['best_epoch']} of {r['epochs']}, {r['train_seconds']:.0f} s "
      f"training, {r['protocol']}; {_common.machine()}; {_common.today()}"
  )


if __name__ == "__main__":
  app.run(main)
