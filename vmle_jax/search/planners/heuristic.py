"""The offline planner: a data-driven playbook, then moves on evidence. Not an LLM.

For each batch it chooses one structure (static signature) per bucket and
fills the bucket's lanes with variants that differ only in dynamic values
(learning rate, dropout, weight decay, temperature), which share the
structure's compiled program:

1. **First batch**: the playbook's configuration (search/playbook.py: every
   dimension's prior from the data's statistics), with the rules of a
   cognition summary or earlier insights applied on top (transfer), and
   variants of its rates.
   Under a budget in minutes, a structure clearly cheaper (the
   window that covers the median user's history, one width down) shares the
   first batch with it: the search learns early whether the cheap model ranks
   near the dear one, and what a lane-epoch costs on this machine.
2. **Later batches**, from the best trial so far:
   - *combine*: a structural change that helped elsewhere but is not in the
     best configuration is added to it (several changes in one trial);
   - *explore*: otherwise the untried structural alternative with the largest
     expected gain: the playbook's uncertainty about the dimension, its rank
     among the alternatives, what this study and the memory say about the
     move, and what the best trial's learning curve suggests;
   - under a budget in minutes, structural moves are ranked by expected
     gain over relative cost, and a structure whose batch the study's
     measured price says cannot finish in the minutes left is not proposed;
   - *refine*: in the last batch, or when no structural move is worth a
     batch, the best structure again with its rates refined in a shrinking
     region. A move is not worth a batch when the best trial's curve argues
     against it (still rising at the cap: no deeper stack, no larger batch),
     or, with fewer than two batches left to build on it, when the playbook
     is fairly sure of the dimension (confidence >= 0.6) and neither the
     curve nor the memory suggests the move.
   Rate variants are ordered by the best trial's curve: still rising at the
   epoch cap -> a higher rate first; over-fitting -> more dropout first; the
   moves the curve argues against last.

Its reflections read every trial's curve and its outcome against the
hypothesis; its rules are counted from the evidence, never invented. It is
deterministic: the same memory and trials give the same proposals, which
makes studies resumable and reproducible.
"""

from __future__ import annotations

import json
import math

import numpy as np

from vmle_jax.config import DYNAMIC_FIELDS
from vmle_jax.memory.records import RuleKey, structure_credit
from vmle_jax.memory.summaries import NEAR, expected_gain, is_near
from vmle_jax.search.cost import Price, relative_cost
from vmle_jax.search.curves import diagnose
from vmle_jax.search.planners.base import Answer
from vmle_jax.search.playbook import DataProfile, Prior, dimension_choices, inert, playbook
from vmle_jax.search.space import Choice, Float, Int, LogFloat, SearchSpace, SpaceError

MIN_GAIN = 0.005  # relative validation gain that counts as an improvement
SURE = 0.6  # playbook confidence above which a dimension is explored only with time to spare
FOLLOW_UP_BATCHES = 2  # batches after a structural move to build on it (else: refine)
MAX_LANES_PER_STRUCTURE = 16  # above this, a batch holds several structures
# A first-batch scout must be at least this many times cheaper by the cost model, whose
# fixed per-epoch term keeps ratios conservative: 1.5 by the model (window 100 / width 64
# against 200 / 128 on ml-100k) is about 3x in measured seconds on this CPU.
SCOUT_RATIO = 1.5
# Dynamic dimensions a bucket's variants move, and how far (per refinement level).
RATE_STEPS = {
    "lr": (2.0, 1.5, 1.25),
    "dropout": (0.15, 0.1, 0.05),
    "attn_dropout": (0.15, 0.1, 0.05),
    "weight_decay": (0.1, 0.05, 0.02),
    "temperature": (2.0, 1.5, 1.25),
}
# The order in which rate moves of equal standing are tried (every rate of RATE_STEPS).
RATE_ORDER = ("lr", "dropout", "weight_decay", "temperature", "attn_dropout")
_OPPOSITE = {"up": "down", "down": "up"}
WHY = {
    ("lr", "up"): "a larger step climbs further within the epoch cap",
    ("lr", "down"): "a smaller step settles into a better optimum and overfits later",
    ("dropout", "up"): "more dropout regularises; sparse data overfits quickly",
    ("dropout", "down"): "less dropout lets the model fit more signal in few epochs",
    ("attn_dropout", "up"): "attention dropout regularises the mixing of past items",
    ("attn_dropout", "down"): "cleaner attention over the recent items",
    ("weight_decay", "up"): "decay shrinks rarely seen item embeddings",
    ("weight_decay", "down"): "less decay keeps more of what was learned",
    ("temperature", "up"): "a softer softmax over normalised scores",
    ("temperature", "down"): "a sharper softmax separates the positive more",
}


def _key(cfg_dict: dict) -> str:
  return json.dumps(cfg_dict, sort_keys=True, separators=(",", ":"))


def _direction(old, new) -> str:
  if isinstance(old, (bool, str)) or isinstance(new, (bool, str)):
    return "set"
  return "up" if new > old else "down"


def trial_move(trial: dict) -> RuleKey | None:
  """The move of a trial's single change from its parent or anchor."""
  p = trial.get("proposal") or {}
  if not p.get("dimension") or "direction" not in p or p.get("one_change") is False:
    return None  # several changes at once: no single move to credit
  return RuleKey(p["dimension"], p["direction"], p.get("new_value"))


def improved(trial: dict) -> bool | None:
  """Whether a trial beat its parent by MIN_GAIN (None when it has no parent value)."""
  p = trial.get("proposal") or {}
  parent = p.get("parent_value")
  if parent is None:
    return None
  value = trial.get("value")
  return value is not None and value > parent * (1 + MIN_GAIN)


def credited(trials: list[dict]) -> list[dict]:
  """The trials with each structural move valued at its structure's best rate variant in the
  batch (records.structure_credit), which trial gave it in `credited_from`."""
  credit = structure_credit(trials)
  return [
      {**t, "value": credit[t["number"]][0], "credited_from": credit[t["number"]][1]}
      if t["number"] in credit
      else t
      for t in trials
  ]


def _plain(v):
  return v.item() if isinstance(v, np.generic) else v


class HeuristicPlanner:
  """See the module docstring."""

  name = "heuristic"
  is_llm = False

  def describe(self) -> str:
    return (
        "planner: heuristic (offline and deterministic: a playbook from the data's "
        "statistics, then moves on evidence, lanes filled with rate variants; not an LLM)"
    )

  # ---------------------------------------------------------------- proposals
  def propose(self, context: dict, n: int, feedback: list[str]) -> Answer:
    del feedback  # its proposals are valid by construction
    space: SearchSpace = context["search_space"]
    priors = context.get("playbook") or playbook(
        context.get("dataset", {}).get("stats", {}), space, context.get("max_epochs", 200)
    )
    trials = context.get("trials", [])
    scored = [t for t in trials if t.get("value") is not None]
    taken = set(context.get("done", ()))
    best = context.get("best")
    base = dict(best["config"]) if best else space.default_config().to_dict()
    left = int(context.get("trials_left", n))
    plan = _Plan(space, priors, base, taken, context, batches_after=math.ceil(left / n) - 1)
    structures = max(1, math.ceil(n / MAX_LANES_PER_STRUCTURE))
    sizes = [n // structures + (1 if i < n % structures else 0) for i in range(structures)]
    tried_structures = {_key(_static(space, t["config"])) for t in trials}

    anchors: list[tuple[dict, dict]] = []  # (config values, the proposal item of its center)
    if not scored:
      start, item = plan.first_structure()
      anchors.append((start, item))
      scout = plan.scout_structure(start) if n >= 2 else None
      if scout is not None:
        anchors.append(scout)
        structures = max(structures, 2)
        sizes = [n // structures + (1 if i < n % structures else 0) for i in range(structures)]
    refine = bool(scored) and (left <= n and len(tried_structures) >= 2)
    if scored:
      best_values = {k: best["config"][k] for k in space.dims}
      candidates = [] if refine else plan.structural_candidates(best, scored)
      for values, item in candidates:
        if len(anchors) >= structures:
          break
        if not plan.fits(values, sizes[len(anchors)], rest=sum(sizes[len(anchors) + 1 :])):
          continue
        if plan.unfit:  # say what was dearer than the minutes left
          item = {
              **item,
              "hypothesis": f"{item['hypothesis']}; set aside: {'; '.join(plan.unfit[:3])}: "
              "its batch would not finish in the minutes left",
          }
        anchors.append((values, item))
      if not anchors:  # refinement of the best structure (no new center to train)
        anchors.append((best_values, None))
    while len(anchors) < structures and scored:
      anchors.append(({k: best["config"][k] for k in space.dims}, None))

    out: list[dict] = []
    for (values, center), size in zip(anchors, sizes):
      got = []
      if center is not None and plan.take(values):
        got.append(center)
      level = min(2, max(0, len(scored) // max(1, n) - 1)) if scored else 0
      if center is None:
        level = min(2, level + 1)
      for item in plan.variants(values, size - len(got), level, best, anchored=center is not None):
        got.append(item)
      if center is None and got and (plan.against or plan.sure or plan.unfit) and not refine:
        got[0] = {
            **got[0],
            "hypothesis": f"refine the best: no structural move is worth a batch now "
            f"({plan.set_aside_text()}). {got[0]['hypothesis']}",
        }
      out += got
    if len(out) < n:
      out += plan.exploration(n - len(out), len(trials))
    return Answer(content={"proposals": out[:n]})

  # ---------------------------------------------------------------- reflection
  def reflect(self, context: dict, batch: list[dict]) -> Answer:
    max_epochs = int(context.get("max_epochs", 200))
    reflections, diagnoses = [], []
    seen = {t["number"]: t for t in context.get("trials", [])}
    seen.update({t["number"]: t for t in batch})
    credit = structure_credit(list(seen.values()))
    for t in batch:
      p = t.get("proposal") or {}
      parent = p.get("parent_value")
      value = t.get("value")
      at_best_rate = ""
      if t["number"] in credit:  # a structure is judged at its best rate in the bucket
        value, by = credit[t["number"]]
        t = {**t, "value": value}
        at_best_rate = f" at its best rate (trial {by})"
      d = diagnose(t, max_epochs)
      shape = f" Curve: {d.text}." if d else ""
      if t["status"] == "diverged":
        text = f"{_describe_change(p)}: diverged ({t.get('error') or 'non-finite loss'})."
      elif parent is None or value is None:
        text = (
            f"{_describe_change(p)}: validation NDCG@10 "
            f"{value if value is not None else float('nan'):.4f} (no parent to compare)."
        )
      else:
        rel = (value - parent) / parent if parent else 0.0
        verdict = (
            "supports the hypothesis" if improved(t) else "no gain: the hypothesis is not supported"
        )
        text = (
            f"{_describe_change(p)}: validation NDCG@10 {parent:.4f} -> {value:.4f}"
            f"{at_best_rate} ({rel:+.1%}), {verdict}."
        )
      reflections.append({"trial": t["number"], "text": text + shape})
      if d is not None:
        diagnoses.append(
            {
                "trial": t["number"],
                "label": d.label,
                "text": d.text,
                "suggests": [list(s) for s in d.suggests],
            }
        )
    return Answer(
        content={
            "reflections": reflections,
            "diagnoses": diagnoses,
            "rules": evidence_rules(
                context.get("trials", []),
                context.get("dataset", {}).get("name", "?"),
                context.get("backbone", "?"),
                context.get("playbook"),
            ),
        }
    )


def _static(space: SearchSpace, config: dict) -> dict:
  return {k: config[k] for k in space.dims if k not in DYNAMIC_FIELDS}


class _Plan:
  """The planner's working state for one batch (priors, taken configs, evidence)."""

  def __init__(
      self,
      space: SearchSpace,
      priors: dict[str, Prior],
      base: dict,
      taken: set,
      context: dict,
      batches_after: int = FOLLOW_UP_BATCHES,
  ):
    self.space, self.priors, self.base, self.taken = space, priors, base, taken
    self.context = context
    self.trials = context.get("trials", [])
    self.rules, self.far_rules = _rules_to_apply(context)
    self.max_epochs = int(context.get("max_epochs", 200))
    self.batches_after = batches_after  # batches left after this one
    # Structural moves judged not worth a batch: argued against by the best trial's curve
    # (move text -> diagnosis), or dimensions the playbook is sure of, too late to build on.
    self.against: dict[str, str] = {}
    self.sure: list[str] = []
    # A budget in minutes: structural moves are ranked by gain per unit of cost. (Under
    # lane-epochs alone every lane-epoch costs the same, whatever the structure.)
    self.priced = bool(context.get("budget_in_minutes"))
    self.stats = (context.get("dataset") or {}).get("stats") or {}
    price = context.get("price")
    self.price = Price(**price) if price else None  # the study's measured price, if any
    self.unfit: list[str] = []  # structural moves whose batch would not finish in time
    self.committed = 0.0  # expected seconds of the structures this batch already holds

  def set_aside_text(self) -> str:
    """Why no structural move was proposed, in one clause per reason."""
    parts = [f"{move}: the best trial is {label}" for move, label in self.against.items()]
    if self.unfit:
      parts.append(f"{', '.join(self.unfit[:3])}: its batch would not finish in the minutes left")
    if self.sure:
      parts.append(
          f"{', '.join(self.sure[:4])}"
          + (f" and {len(self.sure) - 4} more" if len(self.sure) > 4 else "")
          + f": the playbook is at least {SURE:.0%} sure of each and "
          f"only {self.batches_after} batch{'es' if self.batches_after != 1 else ''} would follow"
      )
    return "; ".join(parts)

  # -- bookkeeping
  def config_of(self, values: dict) -> dict | None:
    """Full dimension values if valid, else None."""
    try:
      cfg = self.space.validate({**{k: self.base[k] for k in self.space.dims}, **values})
    except SpaceError:
      return None
    return {k: getattr(cfg, k) for k in self.space.dims}

  def take(self, values: dict) -> bool:
    """Marks a configuration as proposed; False if it was run or proposed already."""
    cfg = self.config_of(values)
    if cfg is None:
      return False
    key = self.space.validate(
        {**{k: self.base[k] for k in self.space.dims}, **cfg}
    ).canonical_json()
    if key in self.taken:
      return False
    self.taken.add(key)
    return True

  def item(
      self,
      values: dict,
      anchor: dict | None,
      kind: str,
      dimension,
      hypothesis: str,
      expected: str,
      risk: str,
  ) -> dict:
    changes = {k: _plain(v) for k, v in values.items() if self.base.get(k) != v}
    if not changes:  # the base configuration itself (e.g. the playbook agrees with the default)
      first = dimension if dimension in values else next(iter(values))
      changes = {first: _plain(values[first])}
    out = {
        "changes": changes,
        "dimension": dimension,
        "kind": kind,
        "hypothesis": hypothesis,
        "expected_effect": expected,
        "risk": risk,
    }
    if anchor is not None:
      out["anchor"] = {k: _plain(v) for k, v in anchor.items()}
    return out

  # -- the first structure: playbook plus transferred rules
  def first_structure(self) -> tuple[dict, dict]:
    start = {d: p.value for d, p in self.priors.items()}
    values = self.config_of(start) or self.config_of({}) or {}
    applied = []
    for rule in self.rules:
      key = rule["key"]
      dim, direction = key.get("dimension"), key.get("direction")
      if dim not in self.space.dims or any(a[0] == dim for a in applied):
        continue
      new = (
          key.get("value")
          if direction == "set"
          else _step(self.space.dims[dim], values[dim], direction, 0)
      )
      new = _coerce_choice(self.space.dims[dim], new)
      if new is None or new == values[dim]:
        continue
      trial = self.config_of({**values, dim: new})
      if trial is not None:
        values = trial
        applied.append((dim, new, rule["rule"]))
    facts = ", ".join(
        f"{d}={values[d]!r}"
        for d in self.priors
        if self.priors[d].confidence >= 0.6 and d not in DYNAMIC_FIELDS
    )
    hypothesis = "the playbook's configuration for these statistics " f"({facts})"
    if applied:
      hypothesis += "; with the memory's rules applied on top: " + "; ".join(
          f"{d}={v!r} ({why})" for d, v, why in applied
      )
    if self.far_rules:
      hypothesis += "; set aside, learned on data far from this one: " + "; ".join(
          f"{r['rule']} (distance {r['distance']:.1f} > {NEAR})" for r in self.far_rules
      )
    kind = "transfer" if applied else "playbook"
    changed = [d for d in values if values[d] != self.base.get(d)]
    return values, self.item(
        values,
        None,
        kind,
        changed[0] if changed else None,
        hypothesis,
        "a strong first configuration: priors from the data's statistics",
        "a prior may not suit this data; the next batches test them",
    )

  def scout_structure(self, start: dict) -> tuple[dict, dict] | None:
    """Under a budget in minutes, (values, item) of a structure at least SCOUT_RATIO times
    cheaper than the playbook's `start` for the first batch: the smallest window that covers the median
    user's history and the next width down. None when the budget is not in minutes or
    `start` is already cheap."""
    if not self.priced:
      return None
    profile = DataProfile.from_stats(self.stats)
    values = dict(start)
    lens = [
        v for v in sorted(dimension_choices(self.space, "max_len")) if v < start.get("max_len", 0)
    ]
    cover = [v for v in lens if v >= profile.p50]
    if cover:
      values["max_len"] = cover[0]
    narrower = [w for w in dimension_choices(self.space, "hidden") if w < start.get("hidden", 0)]
    if narrower:
      values["hidden"] = max(narrower)
      heads = dimension_choices(self.space, "heads")
      fit = [h for h in heads if values["hidden"] % h == 0 and values["hidden"] // h >= 32]
      if "heads" in start and start["heads"] not in fit and (fit or heads):
        values["heads"] = max(fit or [min(heads)])
    scout = self.config_of(values)
    if scout is None:
      return None
    ratio = relative_cost({**self.base, **start}, {**self.base, **scout}, self.stats)
    if ratio < SCOUT_RATIO:
      return None
    changed = [d for d in ("max_len", "hidden", "heads") if scout.get(d) != start.get(d)]
    return scout, self.item(
        scout,
        None,
        "scout",
        changed[0],
        "a cheaper structure beside the playbook's under a budget in minutes ("
        + ", ".join(f"{d} {start[d]!r} -> {scout[d]!r}" for d in changed)
        + f": the window covers the median user's history, p50 length {profile.p50:g}); "
        f"the playbook's costs {ratio:.1f}x its work per lane-epoch, so if it ranks near, the "
        f"minutes left buy {ratio:.1f}x the trials",
        "within a few percent of the playbook's structure at a fraction of the cost",
        "too small a model for this data; the playbook's structure beside it says so",
    )

  def fits(self, values: dict, lanes: int, rest: int = 0) -> bool:
    """Whether `lanes` of `values`' structure, beside the structures this batch already
    holds and `rest` lanes still to fill at the best's structure, should finish in the
    minutes left at the study's measured price (always, before a price or without a budget
    in minutes). A structure that fits is counted in."""
    left, epochs = self.context.get("seconds_left"), self.context.get("epochs_per_trial")
    if not self.priced or self.price is None or left is None or not epochs:
      return True
    cfg = {**self.base, **values}
    cost = self.price.batch_seconds([cfg] * max(1, lanes), self.stats, epochs)
    filler = self.price.batch_seconds([self.base] * rest, self.stats, epochs)
    if self.committed + cost + filler <= left:
      self.committed += cost
      return True
    changed = [d for d in values if values[d] != self.base.get(d) and d not in DYNAMIC_FIELDS]
    self.unfit.append(", ".join(f"{d} -> {values[d]!r}" for d in changed[:2]) or "the structure")
    return False

  # -- structural moves from the best
  def structural_candidates(self, best: dict, scored: list[dict]) -> list[tuple[dict, dict]]:
    """(values, item) of the structures to try next, best-first by expected gain:
    combinations of changes that paid (`_combine`), untried alternatives (`_explore`)."""
    space = self.space
    best_values = {k: best["config"][k] for k in space.dims}
    tried = {_key(_static(space, t["config"])) for t in self.trials}
    evidence = _study_evidence(self.trials)
    found = self._combine(best_values, tried, evidence)
    found += self._explore(best, best_values, tried, evidence)
    if self.priced:
      found = [self._per_cost(gain, values, item, best["config"]) for gain, values, item in found]
    ranked = sorted(enumerate(found), key=lambda x: (-x[1][0], x[0]))  # ties: found first
    return [(values, item) for _, (_, values, item) in ranked]

  def _per_cost(self, gain: float, values: dict, item: dict, best_config: dict) -> tuple:
    """(gain per unit of cost, values, item): under a budget in minutes a
    move is worth its expected gain over what it costs, relative to the best's structure
    (search/cost.py), so a dearer model needs the evidence to say it pays."""
    new = {**best_config, **values}
    if self.price is not None:  # this machine's measured price, once the study has one
      ratio = self.price.seconds(new, self.stats) / self.price.seconds(best_config, self.stats)
    else:
      ratio = relative_cost(new, best_config, self.stats)
    if abs(ratio - 1.0) < 0.05:
      return gain, values, item
    note = f"; it costs {ratio:.1f}x the best's time per lane-epoch, ranked by gain per cost"
    return gain / ratio, values, {**item, "hypothesis": item["hypothesis"] + note}

  def _combine(self, best_values: dict, tried: set, evidence: dict) -> list[tuple]:
    """(gain, values, item): a structural move that helped its parent, set in the best."""
    space = self.space
    static_dims = [d for d in space.dims if d not in DYNAMIC_FIELDS]
    out = []
    for move, info in evidence.items():
      dim = move.dimension
      if dim not in static_dims or info["support"] <= info["contradict"]:
        continue
      new = info["value"]
      if best_values.get(dim) == new:
        continue
      values = self.config_of({**best_values, dim: new})
      if values is None or _key(_static(space, values)) in tried:
        continue
      gain = 1.0 + max(info["gain"], 0.0) * 5
      out.append(
          (
              gain,
              values,
              self.item(
                  values,
                  None,
                  "combine",
                  dim,
                  f"combine: set {dim} {best_values[dim]!r} -> {new!r} in the best configuration; "
                  f"the same change improved trial {info['trials'][0]} over its parent "
                  f"({info['gain']:+.1%})",
                  "the gains add up",
                  "the two changes may not compose",
              ),
          )
      )
    return out

  def _explore(self, best: dict, best_values: dict, tried: set, evidence: dict) -> list[tuple]:
    """(score, values, item): per static dimension the most promising untried alternative."""
    space = self.space
    static_dims = [d for d in space.dims if d not in DYNAMIC_FIELDS]
    diag = diagnose(best, self.max_epochs)
    curve_moves = set(diag.suggests) if diag else set()
    against = set(diag.against) if diag else set()
    late = self.batches_after < FOLLOW_UP_BATCHES
    out = []
    for dim in static_dims:
      prior = self.priors.get(dim)
      if prior is None or inert(dim, best_values):
        continue
      current = best_values[dim]
      confidence = _confidence_after_failures(prior.confidence, dim, evidence)
      alternatives = [prior.value] + list(prior.alternatives)
      alternatives = [a for a in alternatives if a != current]
      # Alternatives nearest the current value first, in the prior's order otherwise.
      for rank, alt in enumerate(alternatives):
        values = self.config_of({**best_values, dim: alt})
        if values is None or _key(_static(space, values)) in tried:
          continue
        direction = _direction(current, alt)
        if (dim, direction) in against:
          self.against[f"{dim} {direction}"] = diag.label
          continue  # the best trial's curve argues against it: the next value, if any
        score = (1.0 - confidence) * 0.6**rank
        failed = evidence.get(RuleKey(dim, direction, alt))
        same_way = [
            i for m, i in evidence.items() if (m.dimension, m.direction) == (dim, direction)
        ]
        if failed and failed["support"] <= failed["contradict"]:
          continue  # this exact move was tried from some parent and did not pay
        if any(
            i["support"] > i["contradict"]
            for m, i in evidence.items()
            if (m.dimension, m.direction) == (dim, _OPPOSITE.get(direction))
        ):
          continue  # the opposite move paid in this study: do not walk back past it
        boost, rule_text = self._rule_support(dim, direction, alt)
        if late and confidence >= SURE and not boost and (dim, direction) not in curve_moves:
          self.sure.append(dim)
          break  # too late to build on a change the playbook is fairly sure is not needed
        if any(i["support"] < i["contradict"] for i in same_way) and direction != "set":
          score *= 0.3
        if (dim, direction) in curve_moves:
          score *= 2.0
        score *= 1.0 + boost
        why = rule_text or prior.rationale
        out.append(
            (
                score,
                values,
                self.item(
                    values,
                    None,
                    "explore",
                    dim,
                    f"{_verb(direction, dim, current, alt)} from the best (trial {best['number']}): "
                    f"the playbook is least sure about {dim} (confidence {confidence:.2f}"
                    + (
                        f", {prior.confidence:.2f} before the failed alternatives"
                        if confidence != prior.confidence
                        else ""
                    )
                    + f"; {why})"
                    + (
                        f"; the best trial's curve suggests it ({diag.label})"
                        if (dim, direction) in curve_moves
                        else ""
                    ),
                    "higher validation NDCG@10 than the best",
                    "the playbook's choice was right; the rate variants still refine it",
                ),
            )
        )
        break  # one alternative per dimension per batch: the most promising
    return out

  def _rule_support(self, dim: str, direction: str, value) -> tuple[float, str | None]:
    for rule in self.rules:
      key = RuleKey.of(rule["key"])
      if (key.dimension, key.direction) != (dim, direction):
        continue
      if direction == "set" and _coerce_choice(self.space.dims[dim], key.value) != value:
        continue
      return 1.0 + 5 * expected_gain(rule), f"memory: {rule['rule']}"
    return 0.0, None

  # -- rate variants around a structure
  def variants(
      self, values: dict, k: int, level: int, best: dict | None, anchored: bool
  ) -> list[dict]:
    """Up to k configs of `values`' structure with other dynamic values, best-first:
    the rate scaled to a new width, single rate moves by evidence, seeded draws in the
    trust region, then the moves that failed before."""
    if k <= 0:
      return []
    diag = diagnose(best, self.max_epochs) if best else None
    against = set(diag.against) if diag else set()
    against |= _against_width_law(values, best)
    first = [m for m in (diag.suggests if diag else ()) if m not in against]
    moves, discouraged = self._rate_moves(values, first, against)
    out = self._width_scaled_rate(values, best, anchored)
    where = "this structure" if anchored else "the best configuration"
    out += self._rate_items(
        values,
        moves,
        level,
        k - len(out),
        lambda dim, direction, new: (
            f"{_verb(direction, dim, values[dim], new)} on {where}: "
            f"{WHY.get((dim, direction), 'another value may suit the data')}"
            + (
                f" (the best trial's curve: {diag.label})"
                if diag and (dim, direction) in first
                else ""
            )
        ),
    )
    out += self._trust_region_draws(values, k - len(out), level, max_tries=60 * k)
    out += self._rate_items(
        values,
        discouraged,
        level,
        k - len(out),
        lambda dim, direction, new: (
            f"{_verb(direction, dim, values[dim], new)}: failed before in this study, tried again "
            "on this structure"
        ),
    )
    return out[:k]

  def _rate_moves(self, values: dict, first: list, against: set = frozenset()) -> tuple[list, list]:
    """(moves, discouraged): single rate moves, the curve's suggestions first, then moves
    that paid in this study (momentum), the moves the curve argues against last; moves
    that failed at least twice without paying are set apart."""
    space = self.space
    moves = []
    for dim in ("lr", "dropout", "weight_decay", "temperature", "attn_dropout"):
      if dim not in space.dims or dim not in RATE_STEPS:
        continue
      if dim == "temperature" and not values.get("l2_norm", False):
        continue
      if dim == "attn_dropout" and "dropout" in space.dims:
        continue  # moves with dropout (see _trust_region_draws)
      for direction in ("up", "down"):
        moves.append((dim, direction))
    evidence = {(m.dimension, m.direction): i for m, i in _study_evidence(self.trials).items()}
    net = lambda m: (evidence[m]["support"] - evidence[m]["contradict"]) if m in evidence else 0

    def failed(m):
      return m in evidence and evidence[m]["support"] == 0 and evidence[m]["contradict"] >= 2

    moves.sort(
        key=lambda m: (
            0 if m in first else 2 if m in against else 1,
            first.index(m) if m in first else 0,
            -net(m),
            RATE_ORDER.index(m[0]),
            0 if m[1] == "up" else 1,
        )
    )
    return [m for m in moves if not failed(m)], [m for m in moves if failed(m)]

  def _width_scaled_rate(self, values: dict, best: dict | None, anchored: bool) -> list[dict]:
    """When the width changed from the best: its rate under the two usual width laws,
    x sqrt(old/new) and x old/new, so that with the unchanged rate (the bucket's center)
    three lanes bracket the step the new width needs."""
    if not (
        best is not None
        and "lr" in self.space.dims
        and values.get("hidden")
        and best["config"].get("hidden")
        and values["hidden"] != best["config"]["hidden"]
    ):
      return []
    old, new = best["config"]["hidden"], values["hidden"]
    out = []
    for power, law in ((0.5, f"sqrt({old}/{new})"), (1.0, f"{old}/{new}")):
      scaled = _clip(self.space.dims["lr"], float(f"{values['lr'] * (old / new) ** power:.3g}"))
      cand = dict(values, lr=scaled)
      if scaled == values["lr"] or not self.take(cand):
        continue
      out.append(
          self.item(
              cand,
              values if anchored else None,
              "variant",
              "lr",
              f"lr scaled to the new width ({values['lr']:g} x {law})",
              "the step the parent's rate gives per weight, at the new width",
              "the old rate was right",
          )
      )
    return out

  def _trust_region_draws(self, values: dict, k: int, level: int, max_tries: int) -> list[dict]:
    """Up to k seeded draws of the rates around `values` (attention dropout follows
    dropout when they were equal), in at most `max_tries` draws."""
    space = self.space
    out = []
    rng = np.random.default_rng(len(self.trials) * 7919 + level)
    tries = 0
    while len(out) < k and tries < max_tries:
      tries += 1
      cand = dict(values)
      for dim in ("lr", "dropout", "weight_decay"):
        if dim in space.dims and dim in RATE_STEPS:
          step = RATE_STEPS[dim][level]
          if dim == "lr":
            cand[dim] = float(f"{values[dim] * step ** rng.uniform(-1.5, 1.5):.3g}")
          else:
            cand[dim] = float(f"{values[dim] + step * rng.uniform(-1.5, 1.5):.3g}")
          cand[dim] = _clip(space.dims[dim], cand[dim])
      if (
          "attn_dropout" in space.dims
          and "dropout" in space.dims
          and values.get("attn_dropout") == values.get("dropout")
      ):
        cand["attn_dropout"] = cand["dropout"]
      if self.take(cand):
        out.append(
            self.item(
                cand,
                values,
                "variant",
                "lr",
                "a draw in the region around the center (rates only)",
                "covers the rates between the single moves",
                "a worse rate",
            )
        )
    return out

  def _rate_items(self, values: dict, moves, level: int, k: int, hypothesis) -> list[dict]:
    """Proposals for up to k single rate moves from `values` (its bucket's center)."""
    out = []
    for dim, direction in moves:
      if len(out) >= k:
        break
      cand = self._rate_move(values, dim, direction, level)
      if cand is not None and self.take(cand):
        out.append(
            self.item(
                cand,
                values,
                "variant",
                dim,
                hypothesis(dim, direction, cand[dim]),
                "higher validation NDCG@10 than the center",
                "a worse rate; the other lanes cover the alternatives",
            )
        )
    return out

  def _rate_move(self, values: dict, dim: str, direction: str, level: int) -> dict | None:
    d = self.space.dims[dim]
    step = RATE_STEPS[dim][level]
    if dim in ("lr", "temperature"):
      new = values[dim] * step if direction == "up" else values[dim] / step
    else:
      new = values[dim] + step if direction == "up" else values[dim] - step
    new = _clip(d, float(f"{new:.3g}"))
    if new == values[dim]:
      return None
    cand = dict(values, **{dim: new})
    if (
        dim == "dropout"
        and "attn_dropout" in self.space.dims
        and values.get("attn_dropout") == values.get("dropout")
    ):
      cand["attn_dropout"] = _clip(self.space.dims["attn_dropout"], new)
    return cand

  # -- nothing left: seeded jumps along two dimensions
  def exploration(self, k: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out, tries = [], 0
    dims = list(self.space.dims)
    while len(out) < k and tries < 200:
      tries += 1
      picked = rng.choice(dims, size=min(2, len(dims)), replace=False)
      changes = {d: _plain(self.space.dims[d].sample(rng)) for d in picked}
      values = self.config_of({**{d: self.base[d] for d in dims}, **changes})
      if values is None or not self.take(values):
        continue
      out.append(
          self.item(
              values,
              None,
              "explore",
              str(picked[0]),
              "exploration: the neighbourhood of the best is exhausted, so jump "
              "along two dimensions",
              "find a better basin",
              "likely worse than the best",
          )
      )
    return out


def _confidence_after_failures(confidence: float, dim: str, evidence: dict) -> float:
  """The playbook's confidence in a dimension after this study's evidence: each alternative
  tried without paying halves the doubt (1 - confidence), as an engineer grows surer of a
  value each time a neighbour of it loses."""
  failed = sum(
      1 for m, i in evidence.items() if m.dimension == dim and i["support"] <= i["contradict"]
  )
  return 1.0 - (1.0 - confidence) * 0.5**failed if failed else confidence


def _against_width_law(values: dict, best: dict | None) -> set[tuple[str, str]]:
  """A rate move against the width change it rides on: a wider model wants a smaller step
  (never a larger one in the same bucket), a narrower one a larger step."""
  if best is None or not values.get("hidden") or not best["config"].get("hidden"):
    return set()
  if values["hidden"] > best["config"]["hidden"]:
    return {("lr", "up")}
  if values["hidden"] < best["config"]["hidden"]:
    return {("lr", "down")}
  return set()


def _study_evidence(trials: list[dict]) -> dict[RuleKey, dict]:
  """Per single move of the study: support, contradiction, mean gain, its value, trials."""
  out: dict[RuleKey, dict] = {}
  for t in credited(trials):
    move, gain = trial_move(t), improved(t)
    if move is None or gain is None:
      continue
    p = t["proposal"]
    info = out.setdefault(
        move,
        {"support": 0, "contradict": 0, "gains": [], "trials": [], "value": p.get("new_value")},
    )
    info["support" if gain else "contradict"] += 1
    info["trials"].append(t["number"])
    if p.get("parent_value") and t.get("value") is not None:
      info["gains"].append(t["value"] / p["parent_value"] - 1.0)
  for info in out.values():
    info["gain"] = float(np.mean(info["gains"])) if info["gains"] else 0.0
  return out


def evidence_rules(
    trials: list[dict], dataset: str, backbone: str, priors: dict | None = None
) -> list[dict]:
  """One rule per (dimension, direction) tried in the study, from the counts of gains.

  With the playbook's priors the rule says where the playbook started, so a
  summary reads "raise dropout (playbook start 0.4)": a move relative to what
  the statistics suggested, which is what transfers to other data."""
  groups: dict[RuleKey, dict] = {}
  for t in credited(trials):
    move, gain = trial_move(t), improved(t)
    if move is None or gain is None:
      continue
    g = groups.setdefault(move, {"support": [], "contradict": []})
    g["support" if gain else "contradict"].append(t["number"])
  rules = []
  for move, g in groups.items():
    dim, direction, value = move.dimension, move.direction, move.value
    s, c = len(g["support"]), len(g["contradict"])
    what = {"up": f"raising {dim}", "down": f"lowering {dim}", "set": f"setting {dim}={value}"}[
        direction
    ]
    verb = "improved" if s >= c else "helped in only"
    start = (priors or {}).get(dim)
    where = f"; playbook start {dim}={start.value!r}" if start is not None else ""
    rules.append(
        {
            "rule": f"{what} {verb} {s} of {s + c} trials on {dataset} ({backbone}{where})",
            "dimension": dim,
            "direction": direction,
            "value": value,
            "supporting_trials": g["support"],
            "contradicting_trials": g["contradict"],
        }
    )
  return rules


def _rules_to_apply(context: dict) -> tuple[list[dict], list[dict]]:
  """(rules to apply, rules set aside): summary rules, then other studies' insights, with
  more support than contradiction; those learned only on data far from this one (distance
  in statistics above NEAR) are set aside, as an engineer would not carry a lesson from
  short sparse sequences to long dense ones."""
  rules = []
  summary = context.get("summary") or {}
  for r in summary.get("rules", []):
    if r.get("support", 0) > r.get("contradict", 0):
      rules.append(r)
  for ins in context.get("insights", []):
    if ins.get("key", {}).get("basis") == "curve":
      continue
    if len(ins.get("support", [])) > len(ins.get("contradict", [])) and not ins.get("this_study"):
      rules.append(ins)
  # The move that paid most goes first.
  rules.sort(key=lambda r: (-expected_gain(r), -float(r.get("confidence", 0.0))))
  near = [r for r in rules if is_near(r.get("distance"))]
  return near, [r for r in rules if not is_near(r.get("distance"))]


def _coerce_choice(dim, value):
  """A rule's value as the dimension's own type ('True' -> True, '128' -> 128)."""
  if not isinstance(dim, Choice) or value in dim.values:
    return value
  for v in dim.values:
    if str(v).lower() == str(value).lower():
      return v
  return value


def _clip(dim, v):
  if isinstance(dim, (Float, Int)):
    return min(max(v, dim.low), dim.high)
  return v


def _step(dim, value, direction: str, shrink: int):
  for d, v in _neighbours(dim, value, shrink):
    if d == direction:
      return v
  return None


def _neighbours(dim, value, shrink: int):
  """[(direction, value)] one step away from `value`."""
  out = []
  if isinstance(dim, Choice):
    values = list(dim.values)
    ordered = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if value not in values:
      return []
    if ordered:
      ranked = sorted(values)
      i = ranked.index(value)
      if i + 1 < len(ranked):
        out.append(("up", ranked[i + 1]))
      if i > 0:
        out.append(("down", ranked[i - 1]))
    else:
      out = [("set", v) for v in values if v != value]
  elif isinstance(dim, Int):
    out = [
        (d, value + s * dim.step)
        for d, s in (("up", 1), ("down", -1))
        if dim.low <= value + s * dim.step <= dim.high
    ]
  elif isinstance(dim, LogFloat):
    factor = 2.0 ** (1.0 / 2**shrink)
    for d, v in (("up", value * factor), ("down", value / factor)):
      v = float(f"{min(max(v, dim.low), dim.high):.4g}")
      if v != value:
        out.append((d, v))
  elif isinstance(dim, Float):
    delta = (dim.high - dim.low) / 8 / 2**shrink
    for d, v in (("up", value + delta), ("down", value - delta)):
      v = float(f"{min(max(v, dim.low), dim.high):.4g}")
      if v != value:
        out.append((d, v))
  return out


def _verb(direction, dim, old, new) -> str:
  if direction == "set":
    return f"set {dim} from {old!r} to {new!r}"
  return f"{'raise' if direction == 'up' else 'lower'} {dim} from {old} to {new}"


def _describe_change(p: dict) -> str:
  if not p.get("changed"):
    return "this config"
  if not p.get("dimension"):
    return f"{len(p['changed'])} changes"
  more = "" if p.get("one_change", True) else f" (+{len(p['changed']) - 1} more)"
  return f"{p['dimension']} {p.get('old_value')!r} -> {p.get('new_value')!r}{more}"
