"""Do a baseline study's marginals say what the agent's tested moves say, on the same data?

A summary counts a random or TPE study's marginal (memory/marginals.py: where
its best quarter sits against the playbook's start) as one test of a move,
beside the agent's tested moves. This checks that reading against the tested
evidence in the committed memories: for every data set x dimension where a
baseline study's marginal and the agent's tested moves (the insights, net of
contradictions) both give a direction, do they agree?

  python bench/marginals.py            # the committed experiment memories
  python bench/marginals.py --memories=runs/experiment-cpu-minutes/experiment.sqlite

Prints one line: agreements of all comparable (study, dimension) pairs, and writes the
pairs to --out (CSV).
"""

from __future__ import annotations

import csv
import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_list(
    "memories",
    [
        os.path.join("docs", "results", "experiment-cpu", "experiment.sqlite.gz"),
        os.path.join("docs", "results", "experiment-cpu-minutes", "experiment.sqlite.gz"),
    ],
    "Memories to read (a .gz is read from a copy).",
)
flags.DEFINE_string("out", os.path.join("runs", "marginals.csv"), "The pairs, one per row.")
FLAGS = flags.FLAGS


def tested_directions(store, backbone: str) -> dict[tuple[str, str], tuple[str, int]]:
  """(data set, dimension) -> (the direction the agent's tested moves favour, net tests),
  from the merged insights: raise minus lower, each net of its contradictions."""
  from vmle_jax.memory.summaries import tested_insights

  net: dict[tuple[str, str], int] = {}
  for ins in tested_insights(store.insights(backbone=backbone)):
    key = ins["key"]
    if key["direction"] not in ("up", "down"):
      continue
    sign = 1 if key["direction"] == "up" else -1
    k = (ins["dataset"], key["dimension"])
    net[k] = net.get(k, 0) + sign * (len(ins["support"]) - len(ins["contradict"]))
  return {k: ("up" if v > 0 else "down", abs(v)) for k, v in net.items() if v != 0}


def main(argv):
  _common.start(argv)
  from vmle_jax.config import DYNAMIC_FIELDS, backbone_config
  from vmle_jax.memory.summaries import baseline_findings
  from vmle_jax.search.recall import playbook_start
  from vmle_jax.search.space import SearchSpace

  rows = []
  for memory in FLAGS.memories:
    if not os.path.exists(memory):
      _common.fail(f"--memories: no memory at {memory}")
    with _common.published_state(memory) as store:
      names = {s["id"]: s["name"] for s in store.studies()}
      for backbone in ("sasrec", "hstu"):
        space = SearchSpace.for_backbone(backbone, base=backbone_config(backbone))
        tested = tested_directions(store, backbone)
        # Every dimension, structural ones too: which of them a summary may read this way
        # is what this measures (memory/marginals.py READ).
        for f in baseline_findings(store, backbone, playbook_start(space), dimensions=None):
          key = f["key"]
          verdict = tested.get((f["dataset"], key.dimension))
          if key.direction == "set" or verdict is None:
            continue
          rows.append(
              {
                  "memory": os.path.basename(os.path.dirname(memory)),
                  "study": names[f["study"]],
                  "dataset": f["dataset"],
                  "dimension": key.dimension,
                  "marginal": key.direction,
                  "tested": verdict[0],
                  "tested_net": verdict[1],
                  "agree": key.direction == verdict[0],
                  "rate": key.dimension in DYNAMIC_FIELDS,
              }
          )
  os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
  with open(FLAGS.out, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["memory"])
    writer.writeheader()
    writer.writerows(rows)

  def share(rs):
    return f"{sum(r['agree'] for r in rs)}/{len(rs)}"

  rates = [r for r in rows if r["rate"]]
  structure = [r for r in rows if not r["rate"]]
  print(
      f"marginals against tested moves, (study, dimension) pairs that agree: all {share(rows)}; "
      f"rates {share(rates)}; structure {share(structure)}; where the tested moves are net 2 "
      f"or more: {share([r for r in rows if r['tested_net'] >= 2])}; pairs in {FLAGS.out}; "
      f"{_common.today()}"
  )


if __name__ == "__main__":
  _common.run(main)
