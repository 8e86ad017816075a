"""Transfer at equal minutes, leaving the target out (bench/transfer.py --budget=minutes).

For each target data set, a cognition summary is distilled from every
finished SASRec study of the *other* shared data sets in the source memories
(agents' insights and baselines' marginals: memory/summaries.py), and the
best configuration of each source data set is kept for warm-starting TPE.
Then four arms run under exactly the equal-minutes experiment's group
settings (bench/_groups.py: minutes, epoch cap, patience, lanes,
median-guarded stopping), seed for seed:

  agent-summary  the agent started from the target's summary
  agent          the agent alone: the experiment's own study, copied
  tpe-warm       TPE with the sources' bests enqueued first, as an Optuna user would
  tpe            TPE alone: the experiment's own study, copied

A study of the experiment memory is copied only when every setting matches
(the resume check), so only the two transfer arms need training here. The
report gives, per target and seed, each arm's best validation NDCG@10 at the
budget, its minutes to the agent-alone's final best and to 98% of the seed's
best, the rules the summary applied or set aside, and the curves.
"""

from __future__ import annotations

import json
import os
import shutil

import _common
from _groups import EQUAL_MINUTES

from vmle_jax.report.render import counting_note

# Target -> the shared data sets its summary is learned on (every other one).
TARGETS = {
    "toys": ("beauty", "sports"),
    "sports": ("beauty", "toys"),
    "ml-100k": ("beauty", "sports", "toys"),
}
ARMS = ("agent-summary", "agent", "tpe-warm", "tpe")
REUSED = ("agent", "tpe")  # copied from the experiment memory when identical
# Trials trained here take ids above this, so an experiment study copied in later keeps its
# own ids without colliding (Store.copy_study keeps ids; the experiment's are far below).
TRIAL_ID_BASE = 10_000_000


def group_of(target: str):
  """The equal-minutes experiment's group of `target` x SASRec (its settings are the arms')."""
  return next(
      g for g in EQUAL_MINUTES["cpu"] if (g.dataset, g.backbone, g.tag) == (target, "sasrec", "")
  )


def distill_left_out(
    sources_from: list[str], datasets: tuple, space, scratch: str, out_path: str, log
) -> dict:
  """Distills the summary of `datasets`' studies in each memory of `sources_from` (a scratch
  copy, its earlier summaries forgotten), combines them into one and writes it to
  `out_path` (and .md); returns it."""
  from vmle_jax.memory import summaries
  from vmle_jax.memory.store import Store
  from vmle_jax.search.recall import playbook_start

  os.makedirs(scratch, exist_ok=True)
  docs = []
  for i, memory in enumerate(sources_from):
    store = Store(_common.writable_copy(memory, os.path.join(scratch, f"source-{i}.sqlite")))
    store.drop_summaries()
    summaries.distill(store, "sasrec", start_of=playbook_start(space), datasets=datasets)
    path, _ = summaries.export_summary(store, "sasrec", os.path.join(scratch, f"{i}.json"))
    docs.append(summaries.read_summary(path))
    store.close()
    log(f"  {memory}: {len(docs[-1]['rules'])} rules from {', '.join(datasets)}")
  doc = summaries.combine(docs)
  doc["provenance"]["memories"] = list(sources_from)
  summaries.write_summary(doc, out_path)
  shutil.rmtree(scratch)
  log(f"  combined: {len(doc['rules'])} rules, {len(doc['dropped'])} dropped -> {out_path}")
  return doc


def source_bests(sources_from: list[str], datasets: tuple) -> list[dict]:
  """The best SASRec configuration of each source data set over every finished study of it
  in the memories (memory/summaries.py dataset_bests): what an Optuna user would enqueue
  first on a new data set, and what the summary's first-batch lane starts from."""
  from vmle_jax.memory import summaries

  bests: dict[str, dict] = {}
  for memory in sources_from:
    with _published(memory) as store:
      bests = summaries.merge_bests(bests, summaries.dataset_bests(store, "sasrec", datasets))
  return [{"dataset": ds, **b} for ds, b in sorted(bests.items())]


def with_source_bests(summary_path: str, sources_path: str, log) -> None:
  """Gives a summary distilled before summaries kept each data set's best configuration the
  warm start's (the same configurations tpe-warm enqueues), so its agent has them too;
  the statistics are the summary's own. A summary that holds bests is left as it is."""
  from vmle_jax.memory import summaries

  doc = summaries.read_summary(summary_path)
  prov = doc["provenance"]
  if prov.get("bests"):
    return
  with open(sources_path) as f:
    warm = json.load(f)
  known = prov.get("stats") or {}
  prov["bests"] = {
      b["dataset"]: {
          "config": b["config"],
          "value": b["value"],
          "study": b["study"],
          "max_epochs": b.get("max_epochs"),
          "stats": b.get("stats") or known.get(b["dataset"]),
      }
      for b in warm
  }
  summaries.write_summary(doc, summary_path)
  log(
      f"  {summary_path}: the bests of {', '.join(sorted(prov['bests']))} added from {sources_path}"
  )


def _published(path: str):
  return _common.published_state(path)


def copy_reused(store, reuse_path: str | None, study_name: str, log) -> bool:
  """Copies the experiment's finished study `study_name` here (its settings are this arm's by
  construction: same group, strategy, seed); False when it is not finished there."""
  if reuse_path is None or store.study(study_name) is not None:
    return False
  with _published(reuse_path) as reuse:
    twin = reuse.study(study_name)
    if twin is None or twin["status"] != "finished":
      log(f"{study_name}: not finished in {reuse_path} yet; run the experiment first")
      return False
    store.copy_study(reuse, study_name, study_name)
  log(f"{study_name}: copied from {reuse_path}")
  return True


def share_machine_price(store, reuse_path: str | None, log) -> None:
  """This machine's probed price from the experiment memory, so a transfer arm prices its
  first batch as the copied arms did, without a probe charged to its minutes alone."""
  from vmle_jax.search.probe import machine_identity

  if reuse_path is None:
    return
  machine, device = machine_identity()
  with _published(reuse_path) as reuse:
    for dtype in ("float32", "bfloat16"):
      row = reuse.machine_price(machine, device, dtype)
      if row is not None and store.machine_price(machine, device, dtype) is None:
        store.put_machine_price(
            machine, device, dtype, row["price"], row["probe"], row["probe_seconds"]
        )
        log(f"price of {machine} ({dtype}) taken from {reuse_path}")


def seed_table(runs: list, minutes: float, target_fraction: float) -> list[dict]:
  """Per seed and arm: the best of its first batch (where a transferred start shows its
  effect), the best at the budget, minutes to the agent-alone's final best and to
  `target_fraction` of the seed's best over the arms (None: not reached)."""
  rows = []
  for seed in sorted({r.seed for r in runs}):
    by_arm = {r.strategy.split(":")[0]: r for r in runs if r.seed == seed}
    best = {arm: r.best_within(seconds=60 * minutes) for arm, r in by_arm.items()}
    top = max((v for v in best.values() if v is not None), default=None)
    alone = best.get("agent")
    for arm in ARMS:
      r = by_arm.get(arm)
      if r is None:
        continue
      to = lambda value: (  # noqa: E731
          None if value is None else _minutes(r.seconds_to(value), minutes)
      )
      first = [v for v, b in zip(r.values, r.batches) if b == 1 and v is not None]
      rows.append(
          {
              "seed": seed,
              "arm": arm,
              "first_batch": max(first, default=None),
              "best": best[arm],
              "to_agent_best": to(alone),
              "to_98": to(None if top is None else target_fraction * top),
          }
      )
  return rows


def _minutes(seconds: float | None, budget: float) -> float | None:
  return None if seconds is None or seconds > 60 * budget else round(seconds / 60, 1)


def rules_on_target(store, study_name: str) -> tuple[str, list[str]]:
  """(the summary arm's first hypothesis: which rules it applied and set aside, the
  reflections that set a rule aside later), read from the study's trials."""
  study = store.study(study_name)
  if study is None:
    return "", []
  trials = sorted(store.finished_trials(study["id"]), key=lambda t: t.number)
  first = next((t for t in trials if (t.proposal or {}).get("hypothesis")), None)
  later = [
      f"trial {t.number}: {t.reflection}"
      for t in trials
      if "set aside from the next batch on" in (t.reflection or "")
  ]
  return ((first.proposal or {}).get("hypothesis", "") if first else ""), later


def markdown(
    target: str, sources: tuple, g, rows: list[dict], rules, summary_path: str, counted: dict
) -> list:
  """The target's section of results.md; `counted` maps each clock rule ('own finish',
  'batch end', 'mixed') to how many of the target's studies it placed in time."""

  def fmt(v, spec):
    return "-" if v is None else format(v, spec)

  lines = [
      f"## {target} (summary from {', '.join(sources)}; {g.minutes:g} min per study, "
      f"{g.max_epochs} epochs max, patience {g.patience}, {g.lanes} lanes)",
      "",
      f"Summary: [{os.path.basename(summary_path)}]({os.path.basename(summary_path)}) "
      f"(and .md). {counting_note(counted)} '-' is not reached within the budget.",
      "",
      "| seed | arm | best of the first batch | best val NDCG@10 at the budget | "
      "min to agent-alone's best | min to 98% of the seed's best |",
      "|---|---|---|---|---|---|",
  ]
  for r in rows:
    lines.append(
        f"| {r['seed']} | {r['arm']} | {fmt(r['first_batch'], '.4f')} | "
        f"{fmt(r['best'], '.4f')} | "
        f"{fmt(r['to_agent_best'], '.1f')} | {fmt(r['to_98'], '.1f')} |"
    )
  applied, later = rules
  if applied:
    lines += ["", f"First batch of agent-summary (seed {rows[0]['seed']}): {applied}"]
  if later:
    lines += ["", "Set aside on the target's evidence:", ""] + [f"- {x}" for x in later]
  return lines + [""]


def write_sources(path: str, bests: list[dict]) -> None:
  with open(path, "w") as f:
    json.dump(bests, f, indent=2, sort_keys=True)
