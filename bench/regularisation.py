"""The dropout an epoch cap can afford, read off the committed trials' curves.

  python bench/regularisation.py                               # every committed state
  python bench/regularisation.py --state=runs/experiment-cpu/experiment.sqlite

Every trial that trained to its cap or was stopped by its patience (finished or
stopped, with a validation score; pruned lanes say nothing about the cap) is
read from scratch copies of the state files (a gzipped one unpacked, a plain
one copied: opening a committed file could migrate it in place). A trial seen
in several files (a study copied into a transfer state) counts once in the
tables; each pair of trials too. Each trial's cap is described by a statistic
of its data set and the cap only: the training positives an average item gets
in it (max_epochs x interactions / items, `priors.positives_per_item`); the
optimizer steps the cap allows are shown beside it. The script prints:

- per data set and cap: the statistic, the steps, the curves, and the share
  still rising at the cap (`curves.diagnose`: "under-trained");
- the split of the statistic that classifies the most curves right (still rising
  below it, not above it);
- per dropout bucket on each side of the split: the curves, the share still
  rising, and the mean relative gap of the final NDCG@10 to its study's best;
- same-configuration pairs (one study, identical but for the dropout): how often
  the higher dropout lost, and the highest rate no pair lost more than
  --loss at where the cap leaves curves rising, and the lowest one a pair did
  (the ceiling the playbook's `dropout_for_the_cap` reads); the long caps'
  pairs at the same rates beside them;
- the same for weight decay (identical but for the decay); with --pairs, every
  dropout pair of the under-trained caps, one line each;

and one summary line. Reads the files only.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import gzip
import math
import os
import shutil
import statistics
import sys
import tempfile

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_list(
    "state", None, "State files (.sqlite or .sqlite.gz); default: every committed one."
)
flags.DEFINE_float("loss", 0.10, "A pair whose higher dropout lost more than this (relative) hurt.")
flags.DEFINE_boolean("pairs", False, "Also list every dropout pair of the under-trained caps.")
FLAGS = flags.FLAGS

SCORED = ("finished", "stopped")  # trained to the cap, or stopped by the patience
METRIC = "NDCG@10"
# Upper edges of the dropout buckets; 0.4 (the playbook's start on sparse data) opens its own
# bucket so that the rates just above it show apart.
EDGES = (0.1, 0.2, 0.3, 0.4, 0.45)


def state_files() -> list[str]:
  """The state files the flags name, or every one committed under docs/results/."""
  if FLAGS.state:
    paths = list(FLAGS.state)
  else:
    pattern = os.path.join(_common.REPO, "docs", "results", "**", "*.sqlite*")
    paths = sorted(p for p in glob.glob(pattern, recursive=True) if p.endswith((".sqlite", ".gz")))
  missing = [p for p in paths if not os.path.exists(p)]
  if missing or not paths:
    _common.fail(f"no state file at {', '.join(missing) or 'docs/results/'}")
  return paths


@contextlib.contextmanager
def scratch(path: str):
  """A Store on a temporary copy of `path` (a .gz unpacked), so the file is never migrated."""
  from vmle_jax.memory.store import Store

  with tempfile.TemporaryDirectory() as tmp:
    plain = os.path.join(tmp, "state.sqlite")
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as src, open(plain, "wb") as dst:
      shutil.copyfileobj(src, dst)
    store = Store(plain)
    try:
      yield store
    finally:
      store.close()


def bucket(rate: float) -> str:
  """The dropout bucket of `rate`, named by its edges."""
  low = 0.0
  for edge in EDGES:
    if rate < edge - 1e-9:
      return f"<{edge:g}" if low == 0.0 else f"{low:g}-{edge:g}"
    low = edge
  return f">={low:g}"


BUCKETS = tuple(bucket(e - 0.01) for e in EDGES) + (bucket(EDGES[-1]),)


def read_trials(paths: list[str]) -> list[list[dict]]:
  """The scored trials of every study (one list per study); a trial already read from
  another file (a copied study) is marked `copy`."""
  from vmle_jax.search.curves import diagnose
  from vmle_jax.search.policy.priors import DataProfile, positives_per_item, steps_per_epoch

  studies, seen = [], set()
  for path in paths:
    with scratch(path) as store:
      datasets = {d["id"]: d for d in store.datasets()}
      for study in store.studies():
        cap = int(study["settings"]["schedule"]["max_epochs"])
        data = datasets[study["dataset_id"]]
        profile = DataProfile.from_stats(data["stats"])
        scored = [
            t
            for t in store.trials(study["id"])
            if t.status in SCORED and (t.valid or {}).get(METRIC) is not None and t.curve
        ]
        if not scored:
          continue
        best = max(t.valid[METRIC] for t in scored)
        rows = []
        for t in scored:
          key = (data["name"], t.signature, tuple(round(p.get(METRIC, 0.0), 6) for p in t.curve))
          copy = key in seen  # kept for the pairs of its study, counted once in the tables
          seen.add(key)
          shape = diagnose({"status": t.status, "curve": t.curve}, cap)
          rows.append(
              dict(
                  group=(data["name"], cap),
                  positives=positives_per_item(profile, cap),
                  steps=cap * steps_per_epoch(profile, int(t.config["batch_size"])),
                  config=t.config,
                  rising=shape is not None and shape.label == "under-trained",
                  value=float(t.valid[METRIC]),
                  gap=1.0 - float(t.valid[METRIC]) / best,
                  copy=copy,
              )
          )
        studies.append(rows)
  return studies


def best_split(rows: list[dict]) -> tuple[float, float, float, float]:
  """(last statistic below, first above, share rising below, above) of the split between
  two consecutive values of the statistic that classifies the most curves right (still
  rising below it, not above it)."""
  values = sorted({r["positives"] for r in rows})
  best, most = None, -1
  for lo, hi in zip(values, values[1:]):
    below = [r["rising"] for r in rows if r["positives"] <= lo]
    above = [r["rising"] for r in rows if r["positives"] >= hi]
    right = sum(below) + len(above) - sum(above)
    if right > most:
      best, most = (lo, hi, sum(below) / len(below), sum(above) / len(above)), right
  return best


def pairs(studies: list[list[dict]], dim: str, rows_kept) -> list[tuple]:
  """(lower, higher, relative change of the higher, (data, cap)) for every two trials of one study that
  differ only in `dim` (and the attention dropout, which SASRec ties to the dropout)."""
  ignored = {dim, "attn_dropout"} if dim == "dropout" else {dim}
  out, seen = [], set()
  for rows in studies:
    groups = collections.defaultdict(list)
    for r in rows:
      if rows_kept(r):
        rest = tuple(sorted((k, repr(v)) for k, v in r["config"].items() if k not in ignored))
        groups[rest].append(r)
    for same in groups.values():
      same.sort(key=lambda r: r["config"][dim])
      for i, a in enumerate(same):
        for b in same[i + 1 :]:
          lo, hi = float(a["config"][dim]), float(b["config"][dim])
          key = (a["group"], lo, hi, round(a["value"], 6), round(b["value"], 6))
          if lo != hi and key not in seen:
            seen.add(key)
            out.append((lo, hi, b["value"] / a["value"] - 1.0, a["group"]))
  return out


def ceiling(moves: list[tuple[float, float, float]], loss: float) -> tuple[float, float]:
  """(the highest rate no pair lost more than `loss` moving up to, the lowest rate a pair
  did): where raising the dropout starts to hurt."""
  hurt = [hi for _, hi, change, _ in moves if change < -loss]
  cliff = min(hurt) if hurt else math.inf
  safe = max((hi for _, hi, _, _ in moves if hi < cliff), default=math.nan)
  return safe, cliff


def main(argv):
  _common.start(argv)
  paths = state_files()
  studies = read_trials(paths)
  rows = [r for rows in studies for r in rows if not r["copy"]]
  distinct = sum(any(not r["copy"] for r in rs) for rs in studies)
  if not rows:
    _common.fail("no finished or stopped trial with a curve in the state files")

  print("| data, cap | positives/item | steps in cap | curves | still rising at cap |")
  print("|---|---:|---:|---:|---:|")
  groups = collections.defaultdict(list)
  for r in rows:
    groups[r["group"]].append(r)
  for (name, cap), rs in sorted(groups.items(), key=lambda kv: kv[1][0]["positives"]):
    steps = sorted({r["steps"] for r in rs})
    print(
        f"| {name}, {cap} epochs | {rs[0]['positives']:.0f} | {steps[0]}-{steps[-1]} | {len(rs)} "
        f"| {sum(r['rising'] for r in rs) / len(rs):.0%} |"
    )
  lo, hi, rising_below, rising_above = best_split(rows)
  split = math.sqrt(lo * hi)
  print(
      f"\nsplit: {split:.0f} positives per item (between {lo:.0f} and {hi:.0f}): "
      f"{rising_below:.0%} of curves still rising below, {rising_above:.0%} above\n"
  )
  short = lambda r: r["positives"] < split  # noqa: E731
  print(
      f"| dropout | curves (<{split:.0f}) | rising | mean gap | curves (>={split:.0f}) | rising "
      "| mean gap |"
  )
  print("|---|---:|---:|---:|---:|---:|---:|")
  for name in BUCKETS:
    cells = []
    for side in (True, False):
      rs = [r for r in rows if short(r) == side and bucket(r["config"]["dropout"]) == name]
      if rs:
        rising = sum(r["rising"] for r in rs) / len(rs)
        gap = statistics.mean(r["gap"] for r in rs)
        cells += [str(len(rs)), f"{rising:.0%}", f"{gap:.1%}"]
      else:
        cells += ["0", "-", "-"]
    print(f"| {name} | " + " | ".join(cells) + " |")

  under = pairs(studies, "dropout", short)
  long = pairs(studies, "dropout", lambda r: not short(r))
  safe, cliff = ceiling(under, FLAGS.loss)  # read where the cap leaves curves rising
  summary = {}
  for label, moves in (("under-trained", under), ("long", long)):
    below = [c for _, h, c, _ in moves if h <= safe]
    above = [c for _, h, c, _ in moves if h >= cliff]
    line = f"dropout pairs, {label} caps: {len(moves)}"
    if below:
      line += (
          f"; up to {safe:g}: {len(below)}, {sum(c < 0 for c in below)} lost, "
          f"{min(below):+.1%}..{max(below):+.1%}"
      )
    if above:
      line += (
          f"; to {cliff:g} or more: {len(above)}, {sum(c < 0 for c in above)} lost, "
          f"median {statistics.median(above):+.1%}, {min(above):+.1%}..{max(above):+.1%}"
      )
    print(line)
    summary[label] = (below, above)
  if FLAGS.pairs:
    for lo, hi, change, (name, cap) in sorted(under, key=lambda m: (m[3], m[0], m[1], m[2])):
      print(f"  {name}, {cap} epochs: dropout {lo:g} -> {hi:g}: {change:+.1%}")
  decay = pairs(studies, "weight_decay", short)
  if decay:
    print(
        f"weight decay pairs, under-trained caps: {len(decay)} "
        f"({min(lo for lo, *_ in decay):g} -> at most {max(hi for _, hi, *_ in decay):g}), "
        f"{sum(c < 0 for _, _, c, _ in decay)} lost, "
        f"{min(c for _, _, c, _ in decay):+.1%}..{max(c for _, _, c, _ in decay):+.1%}"
    )
  below, above = summary["under-trained"]
  print(
      f"regularisation: {len(rows)} curves (finished or stopped) in {distinct} studies; "
      f"caps under {split:.0f} training positives per item leave {rising_below:.0%} still "
      f"rising, longer ones {rising_above:.0%}; there, raising the dropout to {cliff:g} or more "
      f"lost in {sum(c < 0 for c in above)} of {len(above)} same-configuration pairs "
      f"(median {statistics.median(above) if above else math.nan:+.1%}), up to {safe:g} "
      f"stayed within {min(below, default=math.nan):+.1%}..{max(below, default=math.nan):+.1%} "
      f"({len(below)} pairs); weight decay pairs {len(decay)}, within "
      f"{min((c for _, _, c, _ in decay), default=math.nan):+.1%}.."
      f"{max((c for _, _, c, _ in decay), default=math.nan):+.1%}; {len(paths)} state files; "
      f"{_common.today()}"
  )


if __name__ == "__main__":
  app.run(main)
