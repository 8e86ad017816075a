"""Recall: what a planner may read about a study, built from the SQLite memory.

`build_context` reads the study's finished trials (each as plain data, its
curve read, a variant's parent resolved to its bucket's center), the current
best, the coverage map, the insights of this and similar data sets (or, for a
fair comparison, of this study only), the backbone's cognition summary with
every rule's distance from this data set's statistics, the playbook's priors,
and what is left of the budget with the study's measured price. Planners get
this `PlannerContext` and never the store.
"""

from __future__ import annotations

from typing import Callable

from vmle_jax.config import canonical_json
from vmle_jax.memory import summaries
from vmle_jax.memory.records import Trial, confidence
from vmle_jax.memory.store import Store
from vmle_jax.search.budget import (
    Budget,
    charged_seconds,
    estimate_batch,
    spent_seconds,
    trials_left,
)
from vmle_jax.search.cost import measured_price
from vmle_jax.search.curves import diagnose
from vmle_jax.search.policy.priors import playbook
from vmle_jax.search.policy.state import (
    DEFAULT_LANES,
    DEFAULT_MAX_EPOCHS,
    DEFAULT_PATIENCE,
    BudgetState,
    PlannerContext,
)
from vmle_jax.search.probe import cached_price
from vmle_jax.search.space import SearchSpace

RECALLS = ("memory", "study")
SIMILAR_DATASETS = 2  # how many of the nearest other data sets' insights the agent reads


def build_context(
    store: Store,
    study: dict,
    space: SearchSpace,
    fingerprint: dict,
    recall: str = "memory",
    summary: dict | None = None,
) -> PlannerContext:
  """The context of `study` (a store row) over `space` on data with `fingerprint`.

  recall="memory" reads insights of this and similar data sets and the latest summary;
  recall="study" (fair comparisons) only this study's insights and the `summary` given."""
  sid = study["id"]
  finished = store.finished_trials(sid)
  trials = [trial_view(t) for t in finished]
  resolve_anchors(trials)
  schedule = (study.get("settings") or {}).get("schedule") or {}
  max_epochs = int(schedule.get("max_epochs", DEFAULT_MAX_EPOCHS))
  for t in trials:
    d = diagnose(t, max_epochs)
    t["diagnosis"] = None if d is None else {"label": d.label, "text": d.text}
  scored = [t for t in trials if t["value"] is not None]
  stats = {k: v for k, v in fingerprint.items() if k not in ("name", "sha256")}
  if recall == "study":
    insights = [{**ins, "this_study": True} for ins in store.insights(study_id=sid)]
  else:
    insights, summary = similar_insights(store, study), store.summary(study["backbone"])
  summary, insights = with_distances(store, stats, summary, insights, max_epochs)
  return PlannerContext(
      space=space,
      dataset=fingerprint["name"],
      stats=stats,
      playbook=playbook(stats, space, max_epochs),
      backbone=study["backbone"],
      trials=tuple(trials),
      best=max(scored, key=lambda t: t["value"]) if scored else None,
      done=frozenset(canonical_json(t["config"]) for t in trials),
      insights=tuple(insights),
      summary=summary,
      coverage=coverage(space, trials),
      max_epochs=max_epochs,
      patience=int(schedule.get("patience", DEFAULT_PATIENCE)),
      lanes=int((study.get("settings") or {}).get("lanes", DEFAULT_LANES)),
      budget=budget_state(study, finished, trials, stats, store),
  )


def budget_state(
    study: dict,
    finished: list[Trial],
    trials: list[dict],
    stats: dict,
    store: Store | None = None,
) -> BudgetState:
  """What is left of the study's budget; under minutes, the seconds left (every second the
  study was charged: search/budget.py spent_seconds) and the price of a lane-epoch, which
  prices any proposal in seconds (search/cost.py): the study's measured price once a bucket
  has trained (split between work and fixed time as the probe's when it measured one
  structure), before that this machine's probed price from the memory in `store`
  (search/probe.py), else none (`price_source` says which)."""
  budget = Budget.from_dict(study.get("budget"))
  settings = study.get("settings") or {}
  lanes = int(settings.get("lanes", DEFAULT_LANES))
  estimate = estimate_batch(finished, lanes)
  minutes = budget.minutes is not None
  if store is not None and study.get("id") is not None:
    study = store.study(study["id"]) or study  # charges recorded since the study was read
  price, source = None, None
  if minutes:
    dtype = (settings.get("schedule") or {}).get("compute_dtype", "float32")
    probed = cached_price(store, dtype) if store is not None else None
    price = measured_price(trials, stats, prior=probed)  # one structure: the probe's split
    source = "measured" if price is not None else "probe" if probed is not None else None
    price = price or probed
  return BudgetState(
      text=budget.describe(),
      trials=budget.trials,
      trials_left=trials_left(budget, finished, lanes, charged_seconds(study)),
      in_compute=budget.in_compute,
      in_minutes=minutes,
      seconds_left=(
          max(0.0, 60 * budget.minutes - spent_seconds(study, finished)) if minutes else None
      ),
      seconds_per_lane_epoch=estimate.seconds_per_lane_epoch if estimate else None,
      price=price,
      price_source=source,
      epochs_per_trial=estimate.epochs_per_trial if estimate else None,
  )


def coverage(space: SearchSpace, trials: list[dict]) -> dict[str, int]:
  """How many trials moved each dimension."""
  out = {d: 0 for d in space.dims}
  for t in trials:
    for dim in (t.get("proposal") or {}).get("changed", []):
      if dim in out:
        out[dim] += 1
  return out


def similar_insights(store: Store, study: dict) -> list[dict]:
  """The insights of this data set (this study's own evidence apart from the others') and of
  the most similar data sets in the memory."""
  sid, ds_id = study["id"], study["dataset_id"]
  own = {canonical_json(i["key"]): i for i in store.insights(study_id=sid)}
  insights = []
  for other_id in [ds_id] + summaries.similar_datasets(store, ds_id, k=SIMILAR_DATASETS):
    for ins in store.insights(backbone=study["backbone"], dataset_id=other_id):
      mine = own.get(canonical_json(ins["key"])) if other_id == ds_id else None
      if mine is not None:  # this study's evidence, and the others' apart from it
        insights.append({**mine, "this_study": True})
        ins = others_evidence(ins, mine, sid)
        if ins is None:
          continue
      insights.append({**ins, "this_study": False})
  return insights


def others_evidence(merged: dict, mine: dict, study_id: int) -> dict | None:
  """A merged insight without this study's own evidence (None when only this study has
  any): what the other studies that share the memory learned about the same move."""
  support = [i for i in merged["support"] if i not in set(mine["support"])]
  contradict = [i for i in merged["contradict"] if i not in set(mine["contradict"])]
  if not support and not contradict:
    return None
  return {
      **merged,
      "support": support,
      "contradict": contradict,
      "confidence": confidence(len(support), len(contradict)),
      "studies": [s for s in merged.get("studies") or [] if s != study_id],
  }


def trial_view(t: Trial) -> dict:
  """What a planner sees of a trial: plain data (planners never see the store's records)."""
  return {
      "id": t.id,
      "number": t.number,
      "config": t.config,
      "status": t.status,
      "value": t.value,
      "hr10": (t.valid or {}).get("HR@10"),
      "epochs": t.epochs,
      "best_epoch": t.best_epoch,
      "curve": t.curve or [],
      "batch": t.batch,
      "bucket": t.bucket,
      "bucket_seconds": t.bucket_seconds,
      "reflection": t.reflection,
      "proposal": dict(t.proposal or {}),
      "error": t.error,
  }


def resolve_anchors(trials: list[dict]) -> None:
  """Variants name the center of their bucket as parent: fill in its number and value."""
  by_config = {canonical_json(t["config"]): t for t in trials}
  for t in trials:
    p = t["proposal"]
    anchor = p.get("anchor_key")
    if anchor and p.get("parent_value") is None and anchor in by_config:
      parent = by_config[anchor]
      if parent["value"] is not None and parent["id"] != t["id"]:
        p["parent_number"], p["parent_value"] = parent["number"], parent["value"]


def with_distances(
    store: Store,
    stats: dict,
    summary: dict | None,
    insights: list[dict],
    max_epochs: int | None = None,
) -> tuple[dict | None, list[dict]]:
  """The summary's rules and the insights, each with the distance from this data set's
  statistics to the nearest data set it was learned on (planners weigh lessons by it) and,
  where its budget conditions exclude this study's epoch cap, why (`outside`)."""
  sources = dict(((summary or {}).get("provenance") or {}).get("stats") or {})
  sources.update({d["name"]: d["stats"] for d in store.datasets()})

  def placed(r: dict) -> dict:
    return {
        **r,
        "distance": summaries.rule_distance(r, stats, sources),
        "outside": summaries.outside_conditions(r, max_epochs),
    }

  if summary:
    summary = {**summary, "rules": [placed(r) for r in summary.get("rules", [])]}
  return summary, [placed(i) for i in insights]


def playbook_start(space: SearchSpace) -> Callable[[dict, dict], dict]:
  """(study row, data set row) -> the playbook's start there: what a baseline study's moves
  are read against when the memory distills them (memory/summaries.py baseline_findings)."""

  def start(study: dict, dataset: dict) -> dict:
    schedule = (study.get("settings") or {}).get("schedule") or {}
    cap = int(schedule.get("max_epochs", DEFAULT_MAX_EPOCHS))
    return {d: p.value for d, p in playbook(dataset.get("stats") or {}, space, cap).items()}

  return start
