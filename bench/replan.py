"""Re-plan agent studies after a change of the heuristic planner (or check it changed nothing).

  python bench/replan.py --committed --dry_run                  # every committed agent study
  python bench/replan.py --groups=toys/sasrec --dry_run         # what would be cut
  python bench/replan.py --groups=toys/sasrec                   # cut
  python bench/experiment.py --scale=cpu --groups=toys/sasrec --seeds=0,1,2   # re-train

For each agent study of the state files, the current planner is asked for
every stored batch in turn, given the batches before it (on a scratch copy of
the state). The batches it proposes identically are kept, since training
them again would repeat the same configurations with the same seeds; the
study is cut at the first batch it would propose differently
(`search/comparison.py: first_divergent_batch`, then `Store.cut_study`:
those trials, the study's insights and its later planner records are
deleted and it is marked interrupted), so the next `bench/experiment.py`
run resumes it with the current planner. A comparison's agent recalls only
its own study, as it ran; any other agent study (the transfer experiment's)
recalls the whole memory beside it. Baseline studies are never touched.
`--committed` reads every state file under docs/results/ (gzipped ones only
with --dry_run). A dry run reads scratch copies and leaves the state files as
they are. Prints one
line per study and one summary line.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import tempfile

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_string("workdir", "runs/experiment-cpu", "The experiment's state (experiment.sqlite).")
flags.DEFINE_list("state", None, "State files (.sqlite, or .sqlite.gz with --dry_run) instead.")
flags.DEFINE_boolean("committed", False, "Every state file committed under docs/results/.")
flags.DEFINE_list("groups", None, "Only these comparison groups (dataset/backbone).")
flags.DEFINE_list("seeds", None, "Only these seeds.")
flags.DEFINE_string("data_dir", _common.DEFAULT_DATA_DIR, "Where data set names are looked up.")
flags.DEFINE_boolean("dry_run", False, "Say what would be cut; change nothing.")
FLAGS = flags.FLAGS


def state_files() -> list[str]:
  """The state files the flags name (each checked to exist)."""
  if FLAGS.committed:
    pattern = os.path.join(_common.REPO, "docs", "results", "**", "*.sqlite*")
    paths = sorted(p for p in glob.glob(pattern, recursive=True) if p.endswith((".sqlite", ".gz")))
  else:
    paths = FLAGS.state or [os.path.join(FLAGS.workdir, "experiment.sqlite")]
  missing = [p for p in paths if not os.path.exists(p)]
  if missing:
    _common.fail(f"no state file at {', '.join(missing)}")
  packed = [p for p in paths if p.endswith(".gz")]
  if packed and not FLAGS.dry_run:
    _common.fail(f"{packed[0]} is gzipped: only --dry_run reads it (gunzip it to cut studies)")
  return paths


@contextlib.contextmanager
def readable(path: str):
  """A plain SQLite path for `path`: itself when studies may be cut, else a temporary copy
  (a .gz unpacked), so a dry run never touches the state, not even to migrate its schema."""

  if not FLAGS.dry_run:
    yield path
    return
  with tempfile.TemporaryDirectory() as tmp:
    yield _common.writable_copy(path, os.path.join(tmp, "state.sqlite"))


def agent_studies(path: str, seeds: set[int]) -> tuple[list[dict], dict[int, str], set[str]]:
  """(the agent studies of the state the filters keep, data set names by id, the state's
  comparison groups as dataset/backbone)."""
  from vmle_jax.memory.store import Store

  store = Store(path, readonly=True)
  names = {d["id"]: d["name"] for d in store.datasets()}
  studies = store.studies()
  store.close()
  group = lambda s: f"{names[s['dataset_id']]}/{s['backbone']}"  # noqa: E731
  groups = {group(s) for s in studies if s["settings"].get("group")}
  wanted = set(FLAGS.groups or ())
  keep = [
      s
      for s in studies
      if s["strategy"].startswith("agent:heuristic")
      and (not wanted or (s["settings"].get("group") and group(s) in wanted))
      and (not seeds or int(s["settings"].get("seed", 0)) in seeds)
  ]
  return keep, names, groups


def main(argv):
  _common.start(argv)
  from vmle_jax.data import load_dataset
  from vmle_jax.memory.store import Store
  from vmle_jax.search.comparison import first_divergent_batch

  try:
    seeds = {int(s) for s in FLAGS.seeds or ()}
  except ValueError:
    _common.fail(f"--seeds={','.join(FLAGS.seeds)}: seeds are integers")
  with contextlib.ExitStack() as stack:
    states = [(p, stack.enter_context(readable(p))) for p in state_files()]
    plans = [(state, path, *agent_studies(path, seeds)) for state, path in states]
    known = set().union(*(groups for *_, groups in plans))
    bad = [g for g in FLAGS.groups or () if g not in known]
    if bad:
      _common.fail(f"--groups: {', '.join(bad)} not among {', '.join(sorted(known))}")
    data_cache, checked, changed, cut_total = {}, 0, 0, 0
    for state, path, studies, names, _ in plans:
      label = os.path.relpath(state, _common.REPO) if FLAGS.committed else state
      for s in studies:
        ds = names[s["dataset_id"]]
        if ds not in data_cache:
          data_cache[ds] = load_dataset(ds, FLAGS.data_dir)
        recall = "study" if s["settings"].get("group") else "memory"
        batch, agreed = first_divergent_batch(path, s["name"], data_cache[ds], recall=recall)
        checked += 1
        where = f"{label}: {s['name']}"
        if batch is None:
          print(f"{where}: the current planner proposes all {agreed} batches alike; kept")
          continue
        changed += 1
        if FLAGS.dry_run:
          print(f"{where}: would cut from batch {batch} ({agreed} batches alike)")
          continue
        store = Store(path)
        deleted = store.cut_study(s["id"], batch)
        store.close()
        cut_total += deleted
        print(f"{where}: cut from batch {batch} ({agreed} batches alike), {deleted} trials deleted")
  print(
      f"replan: {checked} agent studies checked, {changed} proposed differently, "
      f"{cut_total} trials deleted"
      + (" (dry run)" if FLAGS.dry_run else "; resume them with bench/experiment.py")
  )


if __name__ == "__main__":
  app.run(main)
