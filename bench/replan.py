"""Re-plan the experiment's agent studies after a change of the heuristic planner.

  python bench/replan.py --groups=toys/sasrec --dry_run    # what would be cut
  python bench/replan.py --groups=toys/sasrec              # cut
  python bench/experiment.py --scale=cpu --groups=toys/sasrec --seeds=0,1,2   # re-train

For each agent study of the groups, the current planner is asked for every
stored batch in turn, given the batches before it (on a scratch copy of the
state). The batches it proposes identically are kept, since training them
again would repeat the same configurations with the same seeds; the study is
cut at the first batch it would propose differently
(`search/comparison.py: first_divergent_batch`, then `Store.cut_study`:
those trials, the study's insights and its later planner records are
deleted and it is marked interrupted), so the next `bench/experiment.py`
run resumes it with the current planner. Baseline studies are never
touched. Prints one line per study and one summary line.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_string("workdir", "runs/experiment-cpu", "The experiment's state (experiment.sqlite).")
flags.DEFINE_list("groups", None, "Only these groups (dataset/backbone), e.g. toys/sasrec.")
flags.DEFINE_list("seeds", None, "Only these seeds.")
flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_boolean("dry_run", False, "Say what would be cut; change nothing.")
FLAGS = flags.FLAGS


def main(argv):
  _common.start(argv)
  from vmle_jax.data import load_dataset
  from vmle_jax.memory.store import Store
  from vmle_jax.search.comparison import first_divergent_batch

  path = os.path.join(FLAGS.workdir, "experiment.sqlite")
  if not os.path.exists(path):
    _common.fail(f"--workdir={FLAGS.workdir}: no experiment.sqlite there")
  try:
    seeds = {int(s) for s in FLAGS.seeds or ()}
  except ValueError:
    _common.fail(f"--seeds={','.join(FLAGS.seeds)}: seeds are integers")
  store = Store(path, readonly=True)
  names = {d["id"]: d["name"] for d in store.datasets()}
  known = {  # dataset/backbone -> the comparison group its studies carry
      f"{names[s['dataset_id']]}/{s['backbone']}": s["settings"]["group"]
      for s in store.studies()
      if s["settings"].get("group")
  }
  bad = [g for g in FLAGS.groups or () if g not in known]
  if bad:
    store.close()
    _common.fail(f"--groups: {', '.join(bad)} not among {', '.join(sorted(known))}")
  wanted = {known[g] for g in FLAGS.groups or ()}
  studies = [
      s
      for s in store.studies()
      if s["strategy"] == "agent:heuristic"
      and s["settings"].get("group")
      and (not wanted or s["settings"]["group"] in wanted)
      and (not seeds or int(s["settings"].get("seed", 0)) in seeds)
  ]
  store.close()
  data_cache, cut_total = {}, 0
  for s in studies:
    ds = names[s["dataset_id"]]
    if ds not in data_cache:
      data_cache[ds] = load_dataset(ds, FLAGS.data_dir)
    batch, agreed = first_divergent_batch(path, s["name"], data_cache[ds])
    if batch is None:
      print(f"{s['name']}: the current planner proposes all {agreed} batches alike; kept")
      continue
    if FLAGS.dry_run:
      print(f"{s['name']}: would cut from batch {batch} ({agreed} batches alike)")
      continue
    store = Store(path)
    deleted = store.cut_study(s["id"], batch)
    store.close()
    cut_total += deleted
    print(f"{s['name']}: cut from batch {batch} ({agreed} batches alike), {deleted} trials deleted")
  print(
      f"replan: {len(studies)} agent studies checked, {cut_total} trials deleted"
      + (" (dry run)" if FLAGS.dry_run else "; resume them with bench/experiment.py")
  )


if __name__ == "__main__":
  app.run(main)
