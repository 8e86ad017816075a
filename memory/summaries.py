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
imported version that later distillations keep.
"""

from __future__ import annotations

import json
import math
import os

from vmle_jax.memory.records import RuleKey, Trial, confidence, structure_credit
from vmle_jax.memory.records import relative_gain as gain_over_parent
from vmle_jax.memory.store import Store

FORMAT = "vmle-jax cognition summary v1"


def relative_gain(trial: Trial, credited: float | None = None) -> float | None:
  """A trial's relative change of validation NDCG@10 (or of the `credited` value) over the
  parent its proposal named."""
  value = trial.value if credited is None else credited
  return gain_over_parent(value, (trial.proposal or {}).get("parent_value"))


def expected_gain(rule: dict) -> float:
  """The ordering score of a rule: confidence x mean relative gain (0 when unknown)."""
  return float(rule.get("confidence", 0.0)) * max(float(rule.get("gain") or 0.0), 0.0)


def merge_rules(
    local: list[dict], imported: list[dict], gains: dict[int, float] | None = None
) -> list[dict]:
  """Rules merged by key; see the module docstring. `gains` maps trial id to relative gain."""
  gains = gains or {}
  merged: dict[RuleKey, dict] = {}
  effects: dict[RuleKey, list[tuple[float, int]]] = {}  # (mean gain, trials) per source
  for r in imported:
    k = RuleKey.of(r["key"]).move
    m = merged.setdefault(
        k,
        {
            "key": k.to_dict(),
            "rule": r["rule"],
            "support": 0,
            "contradict": 0,
            "datasets": [],
            "imported": True,
        },
    )
    m["support"] += int(r.get("support", 0))
    m["contradict"] += int(r.get("contradict", 0))
    m["datasets"] = sorted(set(m["datasets"]) | set(r.get("datasets", [])))
    if r.get("gain") is not None:
      effects.setdefault(k, []).append((float(r["gain"]), int(r.get("gain_trials") or 1)))
  for ins in local:
    k = RuleKey.of(ins["key"]).move
    m = merged.setdefault(
        k,
        {
            "key": k.to_dict(),
            "rule": ins["rule"],
            "support": 0,
            "contradict": 0,
            "datasets": [],
            "imported": False,
        },
    )
    m["support"] += len(ins["support"])
    m["contradict"] += len(ins["contradict"])
    m["datasets"] = sorted(set(m["datasets"]) | {ins["dataset"]})
    if not m.get("imported"):
      m["rule"] = ins["rule"]
    effects.setdefault(k, []).extend(
        (gains[t], 1) for t in list(ins["support"]) + list(ins["contradict"]) if t in gains
    )
  out = []
  for k, m in merged.items():
    if m["contradict"] > m["support"]:
      continue  # contradicted by the evidence: dropped
    m["confidence"] = round(confidence(m["support"], m["contradict"]), 4)
    n = sum(w for _, w in effects.get(k, []))
    m["gain"] = round(sum(g * w for g, w in effects[k]) / n, 4) if n else None
    m["gain_trials"] = n
    m["rule"] = _general_rule(m)
    out.append(m)
  out.sort(
      key=lambda m: (
          -expected_gain(m),
          -m["confidence"],
          -(m["support"] + m["contradict"]),
          RuleKey.of(m["key"]).to_json(),
      )
  )
  return out


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
      f"{what}: improved {m['support']} of {n} trials{effect} "
      f"({', '.join(m['datasets']) or 'imported'})"
  )


def tested_insights(insights: list[dict]) -> list[dict]:
  """Insights whose evidence is trials that tested the move (not curve readings, which say
  what a shape suggests on one data set and its epoch cap)."""
  return [i for i in insights if (i.get("key") or {}).get("basis") != "curve"]


def distill(store: Store, backbone: str, provenance: dict | None = None) -> int:
  """Writes a new version of the backbone's summary; returns the version number."""
  latest = store.summary(backbone)
  imported = [r for r in (latest or {}).get("rules", []) if r.get("imported")]
  local = tested_insights(store.insights(backbone=backbone))
  rules = merge_rules(local, imported, _insight_gains(store, local))
  prov = dict(provenance or {})
  # Where the playbook started on each data set: rules are moves relative to it.
  playbooks = dict((latest or {}).get("provenance", {}).get("playbook", {}))
  playbooks.update(prov.get("playbook", {}))
  if playbooks:
    prov["playbook"] = playbooks
  prov["datasets"] = sorted({i["dataset"] for i in local})
  # The statistics of every data set a rule came from, so that a reader can judge how far
  # each lesson travels (rule_distance).
  stats = dict((latest or {}).get("provenance", {}).get("stats", {}))
  stats.update({d["name"]: d["stats"] for d in store.datasets() if d["name"] in prov["datasets"]})
  if stats:
    prov["stats"] = stats
  prov["insights"] = len(local)
  if latest:
    prov["previous_version"] = latest["version"]
  return store.add_summary(backbone, rules, prov)


def export_summary(store: Store, backbone: str, path: str) -> tuple[str, str]:
  """Writes <path> (JSON) and the same path with .md; returns both paths."""
  summary = store.summary(backbone)
  if summary is None:
    raise ValueError(
        f"no cognition summary for backbone {backbone!r} in {store.path}; "
        "run a study with vmle-tune first"
    )
  doc = {
      "format": FORMAT,
      "backbone": backbone,
      "version": summary["version"],
      "provenance": summary["provenance"],
      "rules": summary["rules"],
  }
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(doc, f, indent=2, sort_keys=True)
  md = os.path.splitext(path)[0] + ".md"
  with open(md, "w") as f:
    f.write(to_markdown(doc))
  return path, md


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
        f"(rules are applied on data within distance {NEAR} of these statistics).",
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
      "| # | rule | support | contradict | confidence | mean change | data sets |",
      "|---|---|---|---|---|---|---|",
  ]
  for i, r in enumerate(doc["rules"], 1):
    gain = "-" if r.get("gain") is None else f"{r['gain']:+.1%}"
    lines.append(
        f"| {i} | {r['rule']} | {r['support']} | {r['contradict']} | "
        f"{r['confidence']:.2f} | {gain} | {', '.join(r['datasets'])} |"
    )
  return "\n".join(lines) + "\n"


def read_summary(path: str) -> dict:
  """A cognition summary file, checked: a ValueError names the file and what is wrong."""
  try:
    with open(path, encoding="utf-8-sig") as f:
      doc = json.load(f)
  except OSError as e:
    raise ValueError(f"summary file {path}: {e.strerror or e}") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"summary file {path}: not valid JSON ({e})") from None
  if not isinstance(doc, dict) or doc.get("format") != FORMAT:
    found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
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
  return doc


def import_summary(store: Store, path: str) -> int:
  """Stores a summary file's rules as an imported version; returns the version."""
  doc = read_summary(path)
  new = [{**r, "imported": True} for r in doc["rules"]]
  latest = store.summary(doc["backbone"])
  earlier = [r for r in (latest or {}).get("rules", []) if r.get("imported")]
  local = tested_insights(store.insights(backbone=doc["backbone"]))
  merged = merge_rules(local, earlier + new, _insight_gains(store, local))
  prov = {
      "imported_from": os.path.abspath(path),
      "source_version": doc.get("version"),
      "datasets": doc.get("provenance", {}).get("datasets", []),
  }
  for part in ("stats", "playbook"):  # carried, so the rules keep their context
    carried = {
        **(latest or {}).get("provenance", {}).get(part, {}),
        **(doc["provenance"].get(part) or {}),
    }
    if carried:
      prov[part] = carried
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
