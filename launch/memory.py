"""vmle-memory: inspect the SQLite memory; export and import cognition summaries.

vmle-memory studies                     # one line per study
vmle-memory trials --study=NAME         # the study's trials
vmle-memory insights [--backbone=sasrec]
vmle-memory summary [--backbone=sasrec] # the latest cognition summary
vmle-memory export --out=sasrec-summary.json [--backbone=sasrec]   # + .md
vmle-memory import --file=sasrec-summary.json --db=other.sqlite
"""

from __future__ import annotations

import json
import os

from absl import flags

from vmle_jax.launch import common

COMMANDS = ("studies", "trials", "insights", "summary", "export", "import", "calls")
flags.DEFINE_string("db", "runs/memory.sqlite", "SQLite memory file.")
flags.DEFINE_string("study", None, "Study name (for `trials` and `calls`).")
flags.DEFINE_string("backbone", "sasrec", "Backbone of the summary or insights.")
flags.DEFINE_string("out", None, "Output JSON path for `export` (a .md is written beside it).")
flags.DEFINE_string("file", None, "Summary JSON to `import`.")
FLAGS = flags.FLAGS


def main(argv) -> None:
  from vmle_jax.memory import summaries
  from vmle_jax.memory.records import best_trial
  from vmle_jax.memory.store import Store, StoreError

  if len(argv) != 2 or argv[1] not in COMMANDS:
    common.fail(f"give one command: {' | '.join(COMMANDS)} (see --help)")
  command = argv[1]
  if command != "import" and not os.path.exists(FLAGS.db):
    common.fail(f"--db={FLAGS.db}: no such memory file")
  try:  # every command but import only reads: a read-only file or directory is fine
    store = Store(FLAGS.db, readonly=command != "import")
  except StoreError as e:
    common.fail(str(e))
  if command == "studies":
    for s in store.studies():
      trials = store.finished_trials(s["id"])
      best = best_trial(trials)
      print(
          f"{s['name']}: {s['strategy']} {s['backbone']} on dataset {s['dataset_id']}, "
          f"{len(trials)} trials, best val NDCG@10 "
          f"{best.value if best else float('nan'):.4f}"
          + (f" (trial {best.number})" if best else "")
          + f", {s['status']}"
      )
  elif command in ("trials", "calls"):
    study = store.study(FLAGS.study) if FLAGS.study else None
    if study is None:
      names = ", ".join(s["name"] for s in store.studies()[:10]) or "none"
      what = (
          f"--study={FLAGS.study!r}: no such study" if FLAGS.study else f"{command} needs --study"
      )
      common.fail(f"{what} (studies in {FLAGS.db}: {names})")
    if command == "calls":
      for c in store.llm_calls(study["id"]):
        print(
            json.dumps(
                {
                    k: c[k]
                    for k in (
                        "planner",
                        "model",
                        "purpose",
                        "outcome",
                        "prompt_tokens",
                        "answer_tokens",
                        "latency_s",
                        "detail",
                    )
                }
            )
        )
      return
    for t in store.trials(study["id"]):
      v = t.value
      p = t.proposal or {}
      if p.get("dimension"):
        more = len(p.get("changed", [])) - 1
        change = f"{p['dimension']} {p.get('old_value')!r}->{p.get('new_value')!r}" + (
            f" (+{more} more)" if more > 0 else ""
        )
      else:
        change = "default" if not p.get("changed") else f"{len(p['changed'])} changes"
      kind = f"[{p['kind']}] " if p.get("kind") else ""
      batch = f"b{t.batch} " if t.batch is not None else ""
      print(
          f"#{t.number:3d} {batch}{t.status:9s} {t.epochs or 0:3d} ep  val NDCG@10 "
          f"{v if v is None else round(v, 4)!s:8s} {kind}{change}"
          + (f"  | {t.reflection}" if t.reflection else "")
      )
  elif command == "insights":
    for i in store.insights(backbone=FLAGS.backbone):
      print(
          f"[{i['dataset']}] {i['rule']} (confidence {i['confidence']:.2f}, "
          f"support {len(i['support'])}, contradict {len(i['contradict'])}, "
          f"{len(i.get('studies') or [])} studies, {i['source']})"
      )
  elif command == "summary":
    if store.summary(FLAGS.backbone) is None:
      common.fail(f"no cognition summary for {FLAGS.backbone} in {FLAGS.db}")
    print(summaries.to_markdown(summaries.document(store, FLAGS.backbone)))
  elif command == "export":
    if not FLAGS.out:
      common.fail("export needs --out=<path>.json")
    try:
      paths = summaries.export_summary(store, FLAGS.backbone, FLAGS.out)
    except ValueError as e:
      common.fail(str(e))
    print(f"wrote {paths[0]} and {paths[1]}")
  elif command == "import":
    if not FLAGS.file:
      common.fail("import needs --file=<summary>.json")
    try:
      version = summaries.import_summary(store, FLAGS.file)
    except ValueError as e:
      common.fail(str(e))
    print(f"imported {FLAGS.file} into {FLAGS.db} as version {version}")


def run() -> None:
  common.run_main(main)


if __name__ == "__main__":
  run()
