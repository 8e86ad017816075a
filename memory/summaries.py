"""Cognition summaries (L2): a backbone's tuning rules distilled from insights, and their transfer.

`distill` merges every insight of a backbone in this memory (all data sets)
with the rules imported from other memories: rules with the same key
(dimension, direction, value) are one rule whose evidence counts add up and
whose data sets are listed; rules that the trials contradict more than
support are dropped. Each rule also carries its effect size: the mean relative
change of validation NDCG@10 over the parent config in the trials that tested
it. The rest are ordered by expected gain (confidence x effect), so that the
move that paid most is tried first where the evidence is equally thin. Each
distillation is a new version. `export_summary` writes JSON (for `import`)
and markdown (for people); `import_summary` stores the rules of a file as an
imported version that later distillations keep. Beside its rules a summary keeps
each data set's best configuration (`dataset_bests`): a rule is one move, and the
move that paid on a near data set is sometimes several at once (a wider model at
a lower rate), which only the configuration itself carries.
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Collection

from vmle_jax.memory import marginals
from vmle_jax.memory.records import RuleKey, Trial, best_trial, confidence, structure_credit
from vmle_jax.memory.records import relative_gain as gain_over_parent
from vmle_jax.memory.store import Store

FORMAT = "vmle-jax cognition summary v2"  # v2: rules carry conditions; sources, dropped rules
READABLE = ("vmle-jax cognition summary v1", FORMAT)


def relative_gain(trial: Trial, credited: float | None = None) -> float | None:
  """A trial's relative change of validation NDCG@10 (or of the `credited` value) over the
  parent its proposal named."""
  value = trial.value if credited is None else credited
  return gain_over_parent(value, (trial.proposal or {}).get("parent_value"))


def expected_gain(rule: dict) -> float:
  """The ordering score of a rule: confidence x mean relative gain (0 when unknown)."""
  return float(rule.get("confidence", 0.0)) * max(float(rule.get("gain") or 0.0), 0.0)


def merge_rules(
    local: list[dict],
    imported: list[dict],
    gains: dict[int, float] | None = None,
    marginals: list[dict] = (),
    sources: dict | None = None,
) -> tuple[list[dict], list[dict]]:
  """(rules kept, rules dropped with their reason), merged by key; see the module docstring.

  `gains` maps trial id to relative gain; `marginals` are baseline studies' findings
  (memory/marginals.py, each with its "study" id); `sources` maps study id to what it was
  learned under (`study_source`), from which each rule's conditions are drawn."""
  gains, sources = gains or {}, sources or {}
  merged: dict[RuleKey, dict] = {}
  effects: dict[RuleKey, list[tuple[float, int]]] = {}  # (mean gain, trials) per source
  against: dict[RuleKey, int] = {}  # marginals that found the opposite move better

  def entry(k: RuleKey, rule: str, imported: bool) -> dict:
    return merged.setdefault(
        k,
        {
            "key": k.to_dict(),
            "rule": rule,
            "support": 0,
            "contradict": 0,
            "datasets": [],
            "studies": [],
            "basis": [],
            "imported": imported,
        },
    )

  for r in imported:
    k = RuleKey.of(r["key"]).move
    m = entry(k, r["rule"], True)
    m["support"] += int(r.get("support", 0))
    m["contradict"] += int(r.get("contradict", 0))
    m["datasets"] = sorted(set(m["datasets"]) | set(r.get("datasets", [])))
    m["basis"] = sorted(set(m["basis"]) | {"imported"})
    if r.get("conditions"):
      m["imported_conditions"] = union_conditions(m.get("imported_conditions"), r["conditions"])
    if r.get("gain") is not None:
      effects.setdefault(k, []).append((float(r["gain"]), int(r.get("gain_trials") or 1)))
  for ins in local:
    k = RuleKey.of(ins["key"]).move
    m = entry(k, ins["rule"], False)
    m["support"] += len(ins["support"])
    m["contradict"] += len(ins["contradict"])
    m["datasets"] = sorted(set(m["datasets"]) | {ins["dataset"]})
    m["studies"] = sorted(set(m["studies"]) | set(ins.get("studies") or []))
    m["basis"] = sorted(set(m["basis"]) | {"trials"})
    if not m.get("imported"):
      m["rule"] = ins["rule"]
    effects.setdefault(k, []).extend(
        (gains[t], 1) for t in list(ins["support"]) + list(ins["contradict"]) if t in gains
    )
  for f in marginals:
    k = f["key"]
    m = entry(k, k.dimension, False)
    m["support"] += 1
    m["datasets"] = sorted(set(m["datasets"]) | {f["dataset"]})
    m["studies"] = sorted(set(m["studies"]) | {f["study"]})
    m["basis"] = sorted(set(m["basis"]) | {"marginal"})
    if f.get("gain") is not None:
      effects.setdefault(k, []).append((float(f["gain"]), 1))
    if f.get("opposite") is not None:
      against[f["opposite"]] = against.get(f["opposite"], 0) + 1
  for k, n in against.items():
    if k in merged:
      merged[k]["contradict"] += n
  kept, dropped = [], []
  for k, m in merged.items():
    n = sum(w for _, w in effects.get(k, []))
    m["gain"] = round(sum(g * w for g, w in effects[k]) / n, 4) if n else None
    m["gain_trials"] = n
    m["confidence"] = round(confidence(m["support"], m["contradict"]), 4)
    learned_in = [sources[s] for s in m["studies"] if s in sources]
    m["conditions"] = union_conditions(m.pop("imported_conditions", None), conditions(learned_in))
    m["studies"] = sorted(src["study"] for src in learned_in)
    m["rule"] = _general_rule(m)
    why = _drop_reason(m)
    (dropped if why else kept).append({**m, "dropped": why} if why else m)
  kept, dropped = _drop_opposites(kept, dropped)
  kept.sort(key=_rank)
  dropped.sort(key=_rank)
  return kept, dropped


def _rank(m: dict) -> tuple:
  return (
      -expected_gain(m),
      -m["confidence"],
      -(m["support"] + m["contradict"]),
      RuleKey.of(m["key"]).to_json(),
  )


# A rule needs this many tests for it: one is an anecdote (a single TPE study's lean, one
# lucky trial), and a summary's rules are applied all at once on a new data set's start.
MIN_SUPPORT = 2


def _drop_reason(m: dict) -> str | None:
  """Why a merged rule does not go into the summary (None: it does)."""
  s, c = m["support"], m["contradict"]
  if s < MIN_SUPPORT and c == 0:
    return f"one test only: {s} for, none against"
  if c > s:
    return f"contradicted: {s} test(s) for, {c} against"
  if c == s:
    return f"undecided: {s} test(s) for, {c} against"
  if m["gain"] is not None and m["gain"] <= 0:
    return f"no gain to carry: its mean effect is {m['gain']:+.1%}"
  return None


def _evidence(m: dict) -> tuple:
  """How much a rule's tests say for it: tests for minus against, then its confidence, then
  its ranking (effects are compared last: a marginal's and a tested move's are measured
  differently)."""
  return (-(m["support"] - m["contradict"]), -m["confidence"], _rank(m))


def _drop_opposites(kept: list[dict], dropped: list[dict]) -> tuple[list[dict], list[dict]]:
  """Of a rule and its opposite (raise and lower the same dimension), both kept, the one
  with less evidence (`_evidence`) is dropped: a summary never says both."""
  by_key = {RuleKey.of(m["key"]): m for m in kept}
  out = []
  for m in kept:
    k = RuleKey.of(m["key"])
    if k.direction == "set":
      out.append(m)
      continue
    other = by_key.get(RuleKey(k.dimension, "down" if k.direction == "up" else "up"))
    if other is not None and _evidence(other) < _evidence(m):
      dropped.append({**m, "dropped": f"its opposite has more evidence: {other['rule']}"})
    else:
      out.append(m)
  return out, dropped


def _insight_gains(store: Store, insights: list[dict]) -> dict[int, float]:
  """Trial id -> relative gain over its parent, a structural move at its best rate variant
  (records.structure_credit, as the planner's evidence counts it)."""
  ids = {t for ins in insights for t in list(ins["support"]) + list(ins["contradict"])}
  gains, credit = {}, {}
  for t in store.trials_by_id(ids):
    if t.study_id not in credit:
      credit[t.study_id] = structure_credit(
          [
              {
                  "number": s.number,
                  "batch": s.batch,
                  "config": s.config,
                  "value": s.value,
                  "proposal": s.proposal,
              }
              for s in store.finished_trials(t.study_id)
          ]
      )
    g = relative_gain(t, credit[t.study_id].get(t.number, (None,))[0])
    if g is not None:
      gains[t.id] = g
  return gains


def _general_rule(m: dict) -> str:
  k = m["key"]
  what = {
      "up": f"raise {k['dimension']}",
      "down": f"lower {k['dimension']}",
      "set": f"set {k['dimension']}={k.get('value')}",
  }.get(k["direction"], k["dimension"])
  n = m["support"] + m["contradict"]
  effect = f", mean change {m['gain']:+.0%}" if m.get("gain") is not None else ""
  return (
      f"{what}: improved {m['support']} of {n} tests{effect} "
      f"({', '.join(m['datasets']) or 'imported'})"
  )


# Where a rule was learned: the data's statistics and the budget each condition ranges over.
CONDITION_STATS = ("users", "items", "density", "avg_len")
# The dimensions a summary's markdown shows of a data set's best configuration.
BEST_SHOWN = ("hidden", "blocks", "heads", "max_len", "loss", "lr", "dropout", "weight_decay")


def conditions(learned_in: list[dict]) -> dict | None:
  """The ranges a rule was learned over (`study_source` rows): the data's statistics, the
  epoch caps, the minutes a batch took and the kinds of budget; None without sources."""
  out = None
  for src in learned_in:
    out = union_conditions(out, _conditions_of(src))
  return out


def _conditions_of(src: dict) -> dict:
  """One source's conditions: each range a single point (None where it was not recorded)."""

  def point(v):
    return None if v is None else [v, v]

  return {
      "stats": {s: point((src.get("stats") or {}).get(s)) for s in CONDITION_STATS},
      "max_epochs": point(src.get("max_epochs")),
      "minutes_per_batch": point(src.get("minutes_per_batch")),
      "budgets": [src["budget"]] if src.get("budget") else [],
  }


def union_conditions(a: dict | None, b: dict | None) -> dict | None:
  """The conditions of a rule learned in both places: each range widened to cover both."""
  if not a or not b:
    return a or b

  def span(x, y):
    values = [v for r in (x, y) if r for v in r]
    return [min(values), max(values)] if values else None

  return {
      "stats": {
          s: span((a.get("stats") or {}).get(s), (b.get("stats") or {}).get(s))
          for s in CONDITION_STATS
      },
      "max_epochs": span(a.get("max_epochs"), b.get("max_epochs")),
      "minutes_per_batch": span(a.get("minutes_per_batch"), b.get("minutes_per_batch")),
      "budgets": sorted(set(a.get("budgets") or []) | set(b.get("budgets") or [])),
  }


def study_source(store: Store, study: dict, datasets: dict[int, dict]) -> dict:
  """What a study's lessons were learned under: its data set and statistics, backbone,
  strategy, epoch cap, kind of budget and the median minutes its batches took."""
  per_batch: dict[int, dict[int, float]] = {}
  for t in store.finished_trials(study["id"]):
    if t.batch is not None and t.bucket is not None and t.bucket_seconds:
      per_batch.setdefault(t.batch, {})[t.bucket] = float(t.bucket_seconds)
  minutes = [sum(b.values()) / 60 for b in per_batch.values()]
  budget = study.get("budget") or {}
  schedule = (study.get("settings") or {}).get("schedule") or {}
  ds = datasets.get(study["dataset_id"]) or {}
  return {
      "study": study["name"],
      "dataset": ds.get("name"),
      "stats": {s: (ds.get("stats") or {}).get(s) for s in CONDITION_STATS},
      "backbone": study["backbone"],
      "strategy": study["strategy"],
      "max_epochs": schedule.get("max_epochs"),
      "budget": "minutes" if budget.get("minutes") is not None else "trials",
      "minutes_per_batch": round(float(sorted(minutes)[len(minutes) // 2]), 2) if minutes else None,
  }


# A rule learned at epoch caps [lo, hi] is applied where the cap is within this factor of
# that range. Unmeasured as a factor; the reason is measured: regularisation that paid under
# long training misleads under a cap that leaves curves rising (priors.dropout_for_the_cap).
EPOCH_CAP_SPAN = 2.0


def outside_conditions(rule: dict, max_epochs: int | None) -> str | None:
  """Why a rule's budget conditions exclude this study (None: they do not)."""
  caps = (rule.get("conditions") or {}).get("max_epochs")
  if not caps or max_epochs is None:
    return None
  lo, hi = caps
  if lo / EPOCH_CAP_SPAN <= max_epochs <= hi * EPOCH_CAP_SPAN:
    return None
  learned = f"{lo}" if lo == hi else f"{lo}-{hi}"
  return f"learned at epoch caps {learned}, this study's cap is {max_epochs}"


def tested_insights(insights: list[dict]) -> list[dict]:
  """Insights whose evidence is trials that tested the move (not curve readings, which say
  what a shape suggests on one data set and its epoch cap)."""
  return [i for i in insights if (i.get("key") or {}).get("basis") != "curve"]


def baseline_findings(
    store: Store,
    backbone: str,
    start_of: Callable[[dict, dict], dict] | None = None,
    datasets: Collection[str] | None = None,
    dimensions: Collection[str] | None = marginals.READ,
) -> list[dict]:
  """Every finished baseline study's marginal findings (memory/marginals.py), each with its
  study id and data set (only those `datasets`, if given). `start_of(study, dataset row)`
  gives the playbook's start a move is read against (the study's own median without it).
  Agent studies speak through insights."""
  rows = {d["id"]: d for d in store.datasets()}
  out = []
  for study in store.studies():
    if study["backbone"] != backbone or study["status"] != "finished":
      continue
    if study["strategy"].startswith("agent"):
      continue
    ds = rows.get(study["dataset_id"]) or {"name": "?", "stats": {}}
    if datasets is not None and ds["name"] not in datasets:
      continue
    start = start_of(study, ds) if start_of is not None else None
    for f in marginals.study_marginals(store.finished_trials(study["id"]), start, dimensions):
      out.append({**f, "study": study["id"], "dataset": ds["name"]})
  return out


def distill(
    store: Store,
    backbone: str,
    provenance: dict | None = None,
    start_of: Callable[[dict, dict], dict] | None = None,
    datasets: Collection[str] | None = None,
) -> int:
  """Writes a new version of the backbone's summary from every finished study in the memory
  (agents' insights and baselines' marginals, `baseline_findings`), or only those of
  `datasets` (a summary that leaves a target data set out); returns its version."""
  latest = store.summary(backbone)
  imported = [r for r in (latest or {}).get("rules", []) if r.get("imported")]
  local = tested_insights(store.insights(backbone=backbone))
  if datasets is not None:
    local = [i for i in local if i["dataset"] in datasets]
  marginals = baseline_findings(store, backbone, start_of, datasets)
  rows = {d["id"]: d for d in store.datasets()}
  studies = {s["id"]: s for s in store.studies() if s["backbone"] == backbone}
  learned = {i for ins in local for i in ins.get("studies") or []} | {f["study"] for f in marginals}
  sources = {i: study_source(store, studies[i], rows) for i in learned if i in studies}
  rules, dropped = merge_rules(local, imported, _insight_gains(store, local), marginals, sources)
  prov = dict(provenance or {})
  # Where the playbook started on each data set: rules are moves relative to it.
  playbooks = dict((latest or {}).get("provenance", {}).get("playbook", {}))
  playbooks.update(prov.get("playbook", {}))
  if playbooks:
    prov["playbook"] = playbooks
  prov["datasets"] = sorted(
      {i["dataset"] for i in local}
      | {f["dataset"] for f in marginals}
      | {d for r in rules if r.get("imported") for d in r["datasets"]}
  )
  # The statistics of every data set a rule came from, so that a reader can judge how far
  # each lesson travels (rule_distance).
  stats = dict((latest or {}).get("provenance", {}).get("stats", {}))
  if datasets is not None:  # a data set left out is not named, even by an earlier version
    named = set(datasets) | _imported_datasets(latest)
    stats = {k: v for k, v in stats.items() if k in named}
    starts = {k: v for k, v in prov.pop("playbook", {}).items() if k in named}
    if starts:
      prov["playbook"] = starts
  stats.update({d["name"]: d["stats"] for d in store.datasets() if d["name"] in prov["datasets"]})
  if stats:
    prov["stats"] = stats
  prov["insights"] = len(local)
  # Each data set's best configuration, from this memory and carried from earlier versions.
  bests = dict((latest or {}).get("provenance", {}).get("bests", {}))
  if datasets is not None:
    bests = {k: v for k, v in bests.items() if k in named}
  bests = merge_bests(bests, dataset_bests(store, backbone, datasets))
  if bests:
    prov["bests"] = bests
  # The sources of the imported rules are carried (a study named again is the one here).
  carried = {
      src["study"]: src
      for src in (latest or {}).get("provenance", {}).get("sources", [])
      if datasets is None or src.get("dataset") in datasets or src.get("imported")
  }
  carried.update({src["study"]: src for src in sources.values()})
  prov["sources"] = sorted(carried.values(), key=lambda src: src["study"])
  prov["dropped"] = dropped
  if latest:
    prov["previous_version"] = latest["version"]
  return store.add_summary(backbone, rules, prov)


def dataset_bests(
    store: Store, backbone: str, datasets: Collection[str] | None = None
) -> dict[str, dict]:
  """Data set name -> the best trial of `backbone` over its finished studies in the memory
  (only `datasets`, if given): its configuration, validation NDCG@10, study and epoch cap.
  What an engineer starts a near data set from, and what a warm-started TPE enqueues."""
  rows = {d["id"]: d for d in store.datasets()}
  out: dict[str, dict] = {}
  for study in store.studies():
    ds = rows.get(study["dataset_id"])
    if study["backbone"] != backbone or study["status"] != "finished" or ds is None:
      continue
    if datasets is not None and ds["name"] not in datasets:
      continue
    best = best_trial(store.finished_trials(study["id"]))
    if best is None:
      continue
    schedule = (study.get("settings") or {}).get("schedule") or {}
    found = {
        "config": dict(best.config),
        "value": float(best.value),
        "study": study["name"],
        "max_epochs": schedule.get("max_epochs"),
        "stats": {s: (ds.get("stats") or {}).get(s) for s in CONDITION_STATS},
    }
    out = merge_bests(out, {ds["name"]: found})
  return out


def merge_bests(a: dict[str, dict], b: dict[str, dict]) -> dict[str, dict]:
  """Two maps of data set -> best configuration joined: the higher value per data set."""
  out = dict(a)
  for name, best in b.items():
    if name not in out or float(best.get("value") or 0.0) > float(out[name].get("value") or 0.0):
      out[name] = best
  return out


def placed_bests(
    doc: dict | None, stats: dict, max_epochs: int | None
) -> list[tuple[str, dict, str | None]]:
  """(data set, best, why it does not carry or None) for each data set's best configuration
  in a summary, the nearest first: it carries to data within NEAR of the data set it was
  found on, under an epoch cap within EPOCH_CAP_SPAN of its own, as a rule does."""
  prov = (doc or {}).get("provenance") or {}
  known = prov.get("stats") or {}
  out = []
  for name, best in (prov.get("bests") or {}).items():
    source = best.get("stats") or known.get(name)
    distance = dataset_distance(source, stats) if source else None
    cap = best.get("max_epochs")
    placed = {
        **best,
        "distance": None if distance is None else round(distance, 3),
        "outside": outside_conditions({"conditions": {"max_epochs": [cap, cap]}}, max_epochs)
        if cap
        else None,
    }
    out.append((name, placed, transfer_reason(placed)))
  far = float("inf")
  return sorted(
      out,
      key=lambda x: (
          x[1]["distance"] if x[1]["distance"] is not None else far,
          -float(x[1].get("value") or 0.0),
      ),
  )


def _imported_datasets(summary: dict | None) -> set[str]:
  return {d for r in (summary or {}).get("rules", []) if r.get("imported") for d in r["datasets"]}


def export_summary(store: Store, backbone: str, path: str) -> tuple[str, str]:
  """Writes <path> (JSON) and the same path with .md; returns both paths."""
  return write_summary(document(store, backbone), path)


def document(store: Store, backbone: str) -> dict:
  """The backbone's latest summary as a file holds it (format, rules, dropped, sources)."""
  summary = store.summary(backbone)
  if summary is None:
    raise ValueError(
        f"no cognition summary for backbone {backbone!r} in {store.path}; "
        "run a study with vmle-tune first"
    )
  prov = dict(summary["provenance"])
  return {
      "format": FORMAT,
      "backbone": backbone,
      "version": summary["version"],
      "provenance": prov,
      "sources": prov.pop("sources", []),
      "rules": summary["rules"],
      "dropped": prov.pop("dropped", []),
  }


def write_summary(doc: dict, path: str) -> tuple[str, str]:
  """Writes a summary document to <path> (JSON) and beside it .md; returns both paths."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(doc, f, indent=2, sort_keys=True)
  md = os.path.splitext(path)[0] + ".md"
  with open(md, "w") as f:
    f.write(to_markdown(doc))
  return path, md


def combine(docs: list[dict]) -> dict:
  """One summary from several of the same backbone (each distilled in its own memory): rules
  merged by key with their counts, effects and conditions, sources and statistics joined."""
  backbones = {d["backbone"] for d in docs}
  if len(backbones) != 1:
    raise ValueError(f"summaries of several backbones ({', '.join(sorted(backbones))})")
  # Every rule each one weighed, kept or dropped: a rule dropped in one memory still has
  # its tests, which count against or for it in another's.
  weighed = [r for d in docs for r in list(d["rules"]) + list(d.get("dropped") or [])]
  rules, dropped = merge_rules([], [{**r, "imported": True} for r in weighed])
  prov: dict = {"combined": len(docs)}
  for part in ("stats", "playbook"):
    joined = {k: v for d in docs for k, v in (d["provenance"].get(part) or {}).items()}
    if joined:
      prov[part] = joined
  bests: dict[str, dict] = {}
  for d in docs:
    bests = merge_bests(bests, d["provenance"].get("bests") or {})
  if bests:
    prov["bests"] = bests
  prov["datasets"] = sorted({x for d in docs for x in d["provenance"].get("datasets", [])})
  return {
      "format": FORMAT,
      "backbone": backbones.pop(),
      "version": 1,
      "provenance": prov,
      "sources": [src for d in docs for src in d.get("sources", [])],
      "rules": rules,
      "dropped": dropped,
  }


def to_markdown(doc: dict) -> str:
  lines = [
      f"# Cognition summary: {doc['backbone']} (version {doc['version']})",
      "",
      f"Distilled from: {', '.join(doc['provenance'].get('datasets', [])) or 'imports'}.",
      "",
  ]
  for dataset, st in sorted(doc["provenance"].get("stats", {}).items()):
    lines += [
        f"Learned on {dataset}: {st.get('users', 0):,} users, {st.get('items', 0):,} items, "
        f"density {st.get('density', 0):.5f}, mean length {st.get('avg_len', 0):.1f} "
        f"(rules are applied on data within distance {NEAR} of these statistics, under an "
        f"epoch cap within a factor {EPOCH_CAP_SPAN:g} of theirs).",
        "",
    ]
  for dataset, start in sorted(doc["provenance"].get("playbook", {}).items()):
    lines += [
        f"Playbook start on {dataset} (rules move from here): "
        + ", ".join(f"{k}={v!r}" for k, v in start.items())
        + ".",
        "",
    ]
  lines += [
      "| # | rule | support | contradict | confidence | mean change | learned on | under |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for i, r in enumerate(doc["rules"], 1):
    gain = "-" if r.get("gain") is None else f"{r['gain']:+.1%}"
    lines.append(
        f"| {i} | {r['rule']} | {r['support']} | {r['contradict']} | "
        f"{r['confidence']:.2f} | {gain} | {', '.join(r['datasets'])} | "
        f"{describe_conditions(r.get('conditions'))} |"
    )
  bests = doc["provenance"].get("bests") or {}
  if bests:
    lines += [
        "",
        "Each data set's best configuration (a first-batch lane on data within distance "
        f"{NEAR} of its own, under an epoch cap within a factor {EPOCH_CAP_SPAN:g} of its):",
        "",
        "| data set | val NDCG@10 | study | epoch cap | configuration |",
        "|---|---|---|---|---|",
    ]
    for dataset, b in sorted(bests.items()):
      shown = ", ".join(f"{k}={v!r}" for k, v in sorted(b["config"].items()) if k in BEST_SHOWN)
      lines.append(
          f"| {dataset} | {float(b.get('value') or 0):.4f} | {b.get('study', '-')} | "
          f"{b.get('max_epochs') or '-'} | {shown} |"
      )
  if doc.get("dropped"):
    lines += ["", "Dropped, and why:", ""]
    lines += [f"- {r['rule']}: {r.get('dropped')}" for r in doc["dropped"]]
  if doc.get("sources"):
    lines += [
        "",
        "| source study | data set | strategy | epoch cap | budget | minutes a batch |",
        "|---|---|---|---|---|---|",
    ]
    for src in doc["sources"]:
      mpb = src.get("minutes_per_batch")
      lines.append(
          f"| {src['study']} | {src['dataset']} | {src['strategy']} | {src['max_epochs']} | "
          f"{src['budget']} | {'-' if mpb is None else f'{mpb:.1f}'} |"
      )
  return "\n".join(lines) + "\n"


def describe_conditions(c: dict | None) -> str:
  """ "epoch cap 5-8, 1.2-9.8 min a batch (minutes)": the budget a rule was learned under."""
  if not c:
    return "-"

  def rng(r, fmt="{:g}"):
    return fmt.format(r[0]) if r[0] == r[1] else f"{fmt.format(r[0])}-{fmt.format(r[1])}"

  parts = []
  if c.get("max_epochs"):
    parts.append(f"epoch cap {rng(c['max_epochs'])}")
  if c.get("minutes_per_batch"):
    parts.append(f"{rng(c['minutes_per_batch'], '{:.1f}')} min a batch")
  if c.get("budgets"):
    parts.append(f"({', '.join(c['budgets'])})")
  return ", ".join(parts) or "-"


def read_summary(path: str) -> dict:
  """A cognition summary file, checked: a ValueError names the file and what is wrong."""
  try:
    with open(path, encoding="utf-8-sig") as f:
      doc = json.load(f)
  except OSError as e:
    raise ValueError(f"summary file {path}: {e.strerror or e}") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"summary file {path}: not valid JSON ({e})") from None
  found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
  if isinstance(found, str) and found.startswith(FORMAT[:-1]) and found not in READABLE:
    raise ValueError(
        f"summary file {path}: format {found[:60]!r} is not one this vmle-jax reads "
        f"({', '.join(f[-2:] for f in READABLE)}); export it with this version"
    )
  if not isinstance(doc, dict) or found not in READABLE:
    raise ValueError(
        f"summary file {path}: not a vmle-jax cognition summary "
        f"(format {str(found)[:60]!r}; export one with `vmle-memory export`)"
    )
  if not isinstance(doc.get("backbone"), str) or not isinstance(doc.get("rules"), list):
    raise ValueError(f"summary file {path}: needs a 'backbone' name and a 'rules' list")
  for i, r in enumerate(doc["rules"], 1):
    key = r.get("key") if isinstance(r, dict) else None
    if (
        not isinstance(key, dict)
        or not isinstance(key.get("dimension"), str)
        or key.get("direction") not in ("up", "down", "set")
        or not isinstance(r.get("support", 0), int)
        or not isinstance(r.get("contradict", 0), int)
    ):
      raise ValueError(
          f"summary file {path}: rule {i} needs a key {{dimension, direction "
          "(up, down or set), value}} and integer support and contradict counts"
      )
    r.setdefault("rule", f"{key['direction']} {key['dimension']}")
    r.setdefault("datasets", [])
  doc.setdefault("provenance", {})
  bests = doc["provenance"].get("bests") or {}
  if not isinstance(bests, dict) or any(
      not isinstance(b, dict) or not isinstance(b.get("config"), dict) for b in bests.values()
  ):
    raise ValueError(
        f"summary file {path}: provenance.bests maps each data set to {{config, value, ...}}"
    )
  doc.setdefault("sources", [])
  doc.setdefault("dropped", [])
  return doc


def check_backbone(doc: dict, backbone: str, path: str) -> None:
  """Refuses, in one line, a summary learned on another backbone (its moves are another
  model's: a width or a dropout means something else there)."""
  if doc["backbone"] != backbone:
    raise ValueError(
        f"summary file {path} is for backbone {doc['backbone']!r}, this study tunes "
        f"{backbone!r}: export one for {backbone} with `vmle-memory export --backbone={backbone}`"
    )


def import_summary(store: Store, path: str) -> int:
  """Stores a summary file's rules as an imported version; returns the version."""
  doc = read_summary(path)
  new = [{**r, "imported": True} for r in doc["rules"]]
  latest = store.summary(doc["backbone"])
  earlier = [r for r in (latest or {}).get("rules", []) if r.get("imported")]
  # This memory's own insights join at its next distillation (merged here too, they would
  # be counted twice there).
  merged, dropped = merge_rules([], earlier + new)
  prov = {
      "imported_from": os.path.abspath(path),
      "source_version": doc.get("version"),
      "datasets": doc.get("provenance", {}).get("datasets", []),
      "sources": [{**src, "imported": True} for src in doc["sources"]],
      "dropped": dropped + [r for r in doc["dropped"] if isinstance(r, dict)],
  }
  for part in ("stats", "playbook"):  # carried, so the rules keep their context
    carried = {
        **(latest or {}).get("provenance", {}).get(part, {}),
        **(doc["provenance"].get(part) or {}),
    }
    if carried:
      prov[part] = carried
  bests = merge_bests(
      (latest or {}).get("provenance", {}).get("bests") or {}, doc["provenance"].get("bests") or {}
  )
  if bests:
    prov["bests"] = bests
  return store.add_summary(doc["backbone"], merged, prov)


# A lesson carries to data whose statistics lie within this distance of a data set it was
# learned on: about a factor e (2.7x) in each of users, items, density and mean length, or
# e^2 (7x) in one. Short sparse catalogues (the Amazon sets) sit within 1 of each other and
# about 6 from dense long-sequence MovieLens, where their rules were seen to mislead.
NEAR = 2.0


def _profile(stats: dict) -> tuple[float, ...]:
  return (
      math.log1p(stats.get("users", 0)),
      math.log1p(stats.get("items", 0)),
      math.log(max(stats.get("density", 1e-9), 1e-9)),
      math.log1p(stats.get("avg_len", 0)),
  )


def dataset_distance(a: dict, b: dict) -> float:
  """How far apart two data sets' statistics are: Euclidean distance in (log users, log
  items, log density, log mean length), so 1 is a factor e in one of them."""
  return math.sqrt(sum((x - y) ** 2 for x, y in zip(_profile(a), _profile(b))))


def rule_distance(rule: dict, target: dict, sources: dict[str, dict]) -> float | None:
  """Distance from the `target` statistics to the nearest data set the rule (or insight)
  was learned on; None when none of them has known statistics (`sources`: name -> stats)."""
  names = rule.get("datasets") or ([rule["dataset"]] if rule.get("dataset") else [])
  known = [dataset_distance(sources[n], target) for n in names if n in sources]
  return round(min(known), 3) if known else None


def transfer_reason(rule: dict) -> str | None:
  """Why a rule placed on a data set (its "distance" and "outside" from recall.with_distances
  or `placed_rules`) does not carry there; None when it does."""
  if not is_near(rule.get("distance")):
    return f"learned on data at distance {rule['distance']:.1f} from this one, beyond {NEAR}"
  return rule.get("outside")


def placed_rules(doc: dict, stats: dict, max_epochs: int | None) -> tuple[list, list]:
  """(rules that carry to data with `stats` under an epoch cap `max_epochs`, (rule, why)
  for those set aside): what `--summary_from` reports before a study starts."""
  sources = (doc.get("provenance") or {}).get("stats") or {}
  apply, aside = [], []
  for r in doc.get("rules", []):
    if r.get("support", 0) <= r.get("contradict", 0):
      continue
    placed = {
        **r,
        "distance": rule_distance(r, stats, sources),
        "outside": outside_conditions(r, max_epochs),
    }
    why = transfer_reason(placed)
    (aside.append((placed, why)) if why else apply.append(placed))
  return apply, aside


def is_near(distance: float | None) -> bool:
  """Whether a lesson learned at `distance` carries to this data set (unknown: it may)."""
  return distance is None or distance <= NEAR


def similar_datasets(store: Store, dataset_id: int, k: int = 2) -> list[int]:
  """The k other data sets closest in statistics (`dataset_distance`)."""
  rows = store.datasets()
  target = next((r for r in rows if r["id"] == dataset_id), None)
  if target is None:
    return []
  others = [
      (dataset_distance(r["stats"], target["stats"]), r["id"])
      for r in rows
      if r["id"] != dataset_id
  ]
  return [i for _, i in sorted(others)[:k]]
