"""The offline planner's phases: each turns what the study knows into candidates.

- `first_structure`: the playbook's configuration, with the memory's rules on top;
- `source_start`: the best configuration of the nearest data set in the summary;
- `scout`: under a budget in minutes, a cheaper structure beside it;
- `combine`: a structural change that paid elsewhere in the study, set in the best;
- `explore`: per dimension, the most promising untried alternative;
- `per_cost` and `fit_structures`: under minutes, gain per cost, and only what fits;
- `variants`: a bucket's lanes, rate variants of its center (width law, single moves,
  seeded draws, then the moves that failed before);
- `jumps`: when nothing is left nearby, seeded jumps along two dimensions.

Every phase reads a `Planning` (the batch's view of the study) and returns
candidates with their reasons; none writes prose (text.py phrases reasons)
and none changes the planning's state, but for `BatchPlan.reserve`, which
marks a configuration as proposed so that no batch repeats it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from vmle_jax.config import DYNAMIC_FIELDS, canonical_json
from vmle_jax.memory.records import RuleKey, direction_of
from vmle_jax.memory.summaries import expected_gain, placed_bests, transfer_reason
from vmle_jax.search.cost import Price, relative_cost
from vmle_jax.search.curves import Diagnosis, diagnose
from vmle_jax.search.policy import dims, text
from vmle_jax.search.policy.config import PolicyConfig
from vmle_jax.search.policy.evidence import MoveEvidence, study_evidence
from vmle_jax.search.policy.priors import (
    DataProfile,
    Prior,
    dimension_choices,
    heads_that_fit,
    inert,
    playbook,
)
from vmle_jax.search.policy.state import (
    BatchPlan,
    Candidate,
    PlannerContext,
    reason,
    static_values,
)
from vmle_jax.search.space import Choice, Float, Int, LogFloat, typed_value

OPPOSITE = {"up": "down", "down": "up"}


@dataclasses.dataclass
class Planning:
  """One batch's view of the study: the context, the policy's knobs, the playbook's priors,
  the study's evidence and the best trial's curve, and the batch's reserved configurations."""

  ctx: PlannerContext
  cfg: PolicyConfig
  priors: dict[str, Prior]
  plan: BatchPlan
  rules: list[dict]  # the memory's rules to apply, the move that paid most first
  set_aside: list[dict]  # rules not applied here, each with why ("set_aside")
  batches_after: int  # batches left after this one
  evidence: dict[RuleKey, MoveEvidence]
  diagnosis: Diagnosis | None  # the best trial's curve

  @classmethod
  def of(cls, ctx: PlannerContext, cfg: PolicyConfig, n: int) -> "Planning":
    space, best = ctx.space, ctx.best
    # The planner's own playbook thresholds (the context's priors are the default config's).
    priors = playbook(ctx.stats, space, ctx.max_epochs, cfg.playbook)
    base = dict(best["config"]) if best else space.default_config().to_dict()
    left = int(n if ctx.budget.trials_left is None else ctx.budget.trials_left)
    evidence = study_evidence(list(ctx.trials), cfg.min_gain)
    rules, set_aside = memory_rules(ctx, evidence)
    return cls(
        ctx,
        cfg,
        priors,
        BatchPlan(space, base, set(ctx.done)),
        rules,
        set_aside,
        batches_after=math.ceil(left / n) - 1,
        evidence=evidence,
        diagnosis=diagnose(best, ctx.max_epochs) if best else None,
    )

  @property
  def space(self):
    return self.ctx.space

  @property
  def priced(self) -> bool:
    """A budget in minutes: structures are ranked by gain per cost (under lane-epochs alone
    every lane-epoch costs the same, whatever the structure)."""
    return self.ctx.budget.in_minutes

  @property
  def price(self) -> Price | None:
    return self.ctx.budget.price


def memory_rules(
    ctx: PlannerContext, evidence: dict[RuleKey, MoveEvidence]
) -> tuple[list[dict], list[dict]]:
  """(rules to apply, rules set aside, each with why in "set_aside"): summary rules, then
  other studies' insights, with more support than contradiction. Set aside: a lesson learned
  only on data far from this one (distance in statistics above NEAR), as an engineer would
  not carry a lesson from short sparse sequences to long dense ones; one learned under
  another epoch cap (summaries.outside_conditions); and one this study's own trials have
  contradicted (`contradicted_here`), from the batch after they did."""
  rules = [
      r
      for r in (ctx.summary or {}).get("rules", [])
      if r.get("support", 0) > r.get("contradict", 0)
  ]
  for ins in ctx.insights:
    if ins.get("key", {}).get("basis") == "curve" or ins.get("this_study"):
      continue
    if len(ins.get("support", [])) > len(ins.get("contradict", [])):
      rules.append(ins)
  rules.sort(key=lambda r: (-expected_gain(r), -float(r.get("confidence", 0.0))))
  apply, set_aside = [], []
  for r in rules:
    why = set_aside_reason(ctx, r, evidence)
    if why is None:
      apply.append(r)
    else:
      set_aside.append({**r, "set_aside": why})
  return apply, set_aside


def set_aside_reason(
    ctx: PlannerContext, rule: dict, evidence: dict[RuleKey, MoveEvidence]
) -> str | None:
  """Why a memory rule is not applied to this study (None: it is)."""
  carried = transfer_reason(rule)
  if carried:
    return carried
  against = contradicted_here(ctx, RuleKey.of(rule["key"]), evidence)
  if against:
    listed = ", ".join(f"#{n}" for n in against)
    return f"this study's trials {listed} contradict it"
  return None


def contradicted_here(
    ctx: PlannerContext, key: RuleKey, evidence: dict[RuleKey, MoveEvidence]
) -> list[int]:
  """The trials of this study that contradict a rule's move: the move itself tested here
  without paying more often than it paid, or its opposite tested here and paying."""
  move = key.move
  if move.direction == "set" and move.dimension in ctx.space.dims:
    move = RuleKey(move.dimension, "set", typed_value(ctx.space.dims[move.dimension], move.value))
  own = evidence.get(move)
  if own is not None and own.failed and own.contradict:
    return list(own.contradict)
  if move.direction in ("up", "down"):
    opposite = evidence.get(RuleKey(move.dimension, "down" if move.direction == "up" else "up"))
    if opposite is not None and opposite.paid:
      return list(opposite.support)
  return []


def rules_set_aside_by(ctx: PlannerContext, batch: set[int], min_gain: float) -> dict[int, list]:
  """Trial number -> the memory rules (text) that this batch's trials `batch` contradict,
  among those applied before it: set aside from the next batch on (`set_aside_reason`),
  which the reflection of each contradicting trial says."""
  earlier = [t for t in ctx.trials if t["number"] not in batch]
  applied, _ = memory_rules(ctx, study_evidence(earlier, min_gain))
  now = study_evidence(list(ctx.trials), min_gain)
  out: dict[int, list] = {}
  for rule in applied:
    for n in contradicted_here(ctx, RuleKey.of(rule["key"]), now):
      if n in batch:
        out.setdefault(n, []).append(rule["rule"])
  return out


def static_key(space, values: dict) -> str:
  return canonical_json(static_values(space, values))


# ------------------------------------------------------------------ the first batch


def first_structure(pl: Planning) -> Candidate:
  """The playbook's configuration with the memory's near rules applied on top (transfer)."""
  plan, space = pl.plan, pl.space
  values = plan.config_of({d: p.value for d, p in pl.priors.items()}) or plan.config_of({}) or {}
  applied = []
  for rule in pl.rules:
    key = RuleKey.of(rule["key"])
    if key.dimension not in space.dims or any(a[0] == key.dimension for a in applied):
      continue
    d = space.dims[key.dimension]
    new = (
        key.value
        if key.direction == "set"
        else neighbour(pl.cfg, d, values[key.dimension], key.direction)
    )
    new = typed_value(d, new)
    moved = (
        None
        if new is None or new == values[key.dimension]
        else plan.config_of({**values, key.dimension: new})
    )
    if moved is not None:
      values = moved
      applied.append((key.dimension, new, rule["rule"]))
  settled = [
      (d, values[d])
      for d, p in pl.priors.items()
      if p.confidence >= pl.cfg.sure and d not in DYNAMIC_FIELDS
  ]
  changed = [d for d in values if values[d] != plan.base.get(d)]
  why = reason(
      "playbook",
      settled=settled,
      applied=applied,
      set_aside=[(r["rule"], r["set_aside"]) for r in pl.set_aside],
  )
  kind = "transfer" if applied else "playbook"
  return Candidate(values, kind, changed[0] if changed else None, (why,))


def own_start(pl: Planning, transferred: Candidate) -> Candidate | None:
  """The playbook's own configuration beside a first structure the memory's rules moved
  (None when they moved nothing): the rules were learned on other data, and this lane tells
  within one batch whether they carry here, so a summary can add to the playbook's start
  but not take it away (where the rules moved rates only, it shares the transferred
  lane's bucket)."""
  if transferred.kind != "transfer":
    return None
  plain = first_structure(dataclasses.replace(pl, rules=[], set_aside=[]))
  return Candidate(
      plain.values,
      "playbook",
      plain.dimension,
      (reason("own_start", rules=len(pl.rules)),),
  )


def source_start(pl: Planning, taken: list[Candidate]) -> Candidate | None:
  """The best configuration found on the nearest data set of the summary, as a first-batch
  lane (None: no summary holds one that carries here, or `taken` already proposes it).
  Rules are single moves; what paid on a near data set is sometimes several at once (a
  wider model at a lower rate), and only the configuration itself carries that. Under
  minutes, set aside when one lane of it would take more than `source_share` of the
  minutes left."""
  held = [c.values for c in taken]
  for dataset, best, why in placed_bests(pl.ctx.summary, pl.ctx.stats, pl.ctx.max_epochs):
    if why is not None:
      continue
    values = pl.plan.config_of({k: v for k, v in best["config"].items() if k in pl.space.dims})
    if values is None or values in held:
      continue
    seconds, left = lane_seconds(pl, values) if pl.priced else None, pl.ctx.budget.seconds_left
    if seconds is not None and left is not None and seconds > pl.cfg.source_share * left:
      continue
    because = reason(
        "source_best",
        dataset=dataset,
        distance=best["distance"],
        value=best.get("value"),
        changed=sorted(d for d in values if values[d] != taken[0].values.get(d)) if taken else [],
    )
    return Candidate(values, "source", None, (because,))
  return None


def neighbour(cfg: PolicyConfig, dim, value, direction: str):
  """The value one step `direction` from `value` (None at a bound or off the dimension)."""
  if isinstance(dim, Choice):
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in dim.values)
    if not numeric or value not in dim.values:
      return None  # categorical values are set by name, not stepped
    ranked = sorted(dim.values)
    i = ranked.index(value) + (1 if direction == "up" else -1)
    return ranked[i] if 0 <= i < len(ranked) else None
  if isinstance(dim, Int):
    v = value + (dim.step if direction == "up" else -dim.step)
    return v if dim.low <= v <= dim.high else None
  if isinstance(dim, Float):
    if isinstance(dim, LogFloat):
      v = value * cfg.rule_log_step if direction == "up" else value / cfg.rule_log_step
    else:
      delta = (dim.high - dim.low) / cfg.rule_linear_steps
      v = value + delta if direction == "up" else value - delta
    v = float(f"{min(max(v, dim.low), dim.high):.4g}")
    return v if v != value else None
  return None


def lane_seconds(pl: Planning, values: dict) -> float | None:
  """Expected seconds of one lane of `values` at the study's price (probed on this machine
  before the first measurement, fitted to the study's buckets after) for the epochs a trial
  is expected to train (the epoch cap before any is measured); None without a price."""
  if pl.price is None:
    return None
  epochs = pl.ctx.budget.epochs_per_trial or pl.ctx.max_epochs
  return epochs * pl.price.seconds({**pl.plan.base, **values}, pl.ctx.stats)


def rounds(pl: Planning, values: dict, n: int) -> float | None:
  """Batches of `n` lanes of `values`' structure that the minutes left buy (None: no budget
  in minutes or no price): how many rounds of feedback the study can still have."""
  per_lane = lane_seconds(pl, values) if pl.priced else None
  left = pl.ctx.budget.seconds_left
  if per_lane is None or left is None:
    return None
  return left / max(n * per_lane, 1e-9)


def cost_ratio(pl: Planning, dear: dict, cheap: dict) -> float:
  """How many times `cheap`'s time a lane-epoch of `dear` takes: at the study's price (probed
  or measured: search/cost.py) when it has one, else by the cost model's prior."""
  dear, cheap, stats = {**pl.plan.base, **dear}, {**pl.plan.base, **cheap}, pl.ctx.stats
  if pl.price is not None:
    return pl.price.seconds(dear, stats) / max(pl.price.seconds(cheap, stats), 1e-12)
  return relative_cost(dear, cheap, stats)


def cheaper_moves(pl: Planning, start: dict) -> list[tuple[float, str, dict]]:
  """(cost ratio start / moved, dimension, changes) of every single structural move that makes
  `start` cheaper, the largest saving first: the loss (full softmax over the catalogue to
  sampled softmax with the playbook's negatives), the window (the smallest covering the
  median history), one width down (heads that still fit) and one block fewer. What
  dominates the price on this data comes first (the loss on a large catalogue, the window
  on long histories)."""
  space, stats = pl.space, pl.ctx.stats
  profile = DataProfile.from_stats(stats)
  moves = []
  losses = dimension_choices(space, "loss")
  if start.get("loss") == "softmax" and "sampled_softmax" in losses:
    change = {"loss": "sampled_softmax"}
    negatives = pl.priors.get("num_negatives")
    if negatives is not None:
      change["num_negatives"] = negatives.value
    moves.append(("loss", change))
  lens = [v for v in sorted(dimension_choices(space, "max_len")) if v < start.get("max_len", 0)]
  cover = [v for v in lens if v >= profile.p50]
  if cover:
    moves.append(("max_len", {"max_len": cover[0]}))
  narrower = [w for w in dimension_choices(space, "hidden") if w < start.get("hidden", 0)]
  if narrower:
    change = {"hidden": max(narrower)}
    heads = dimension_choices(space, "heads")
    fit = heads_that_fit(heads, change["hidden"], pl.cfg.playbook.min_head_dim)
    if "heads" in start and start["heads"] not in fit and (fit or heads):
      change["heads"] = max(fit or [min(heads)])
    moves.append(("hidden", change))
  if "blocks" in space.dims and start.get("blocks", 1) > space.dims["blocks"].low:
    moves.append(("blocks", {"blocks": start["blocks"] - space.dims["blocks"].step}))
  out = []
  for dim, change in moves:
    moved = pl.plan.config_of({**start, **change})
    if moved is None:
      continue
    ratio = cost_ratio(pl, start, moved)
    if ratio > 1.0 + pl.cfg.same_cost:
      out.append((ratio, dim, moved))
  return sorted(out, key=lambda x: -x[0])


def scout(pl: Planning, start: dict) -> Candidate | None:
  """Under a budget in minutes, a structure at least scout_ratio times cheaper than the
  playbook's `start`: the move that saves most (cheaper_moves: the loss where the catalogue
  makes it dear, else the window covering the median history), then the next, until it is
  scout_ratio cheaper. None when the budget is not in minutes or no such structure exists."""
  if not pl.priced:
    return None
  stats = pl.ctx.stats
  profile = DataProfile.from_stats(stats)
  values, ratio, changed = dict(start), 1.0, []
  for _, dim, moved in cheaper_moves(pl, start):
    if dim == "blocks" and changed:
      continue  # fewer blocks only alone: the scout keeps the playbook's depth otherwise
    values = pl.plan.config_of({**values, **{k: moved[k] for k in moved if moved[k] != start[k]}})
    if values is None:
      return None
    changed = [d for d in values if values[d] != start.get(d)]
    ratio = cost_ratio(pl, start, values)
    if ratio >= pl.cfg.scout_ratio:
      break
  if ratio < pl.cfg.scout_ratio or not changed:
    return None
  why = reason(
      "scout", changes=[(d, start[d], values[d]) for d in changed], p50=profile.p50, ratio=ratio
  )
  return Candidate(values, "scout", changed[0], (why,))


def fitting_cheaper(pl: Planning, best_values: dict) -> Candidate | None:
  """Under minutes, when not even one lane of the best's structure fits the seconds left: the
  structure nearest it (the smallest saving among cheaper_moves, then two of them) whose lane
  does, so the last minutes train something rather than nothing. None when the best's lane
  fits, there is no price, or nothing cheaper fits either."""
  left = pl.ctx.budget.seconds_left
  own = lane_seconds(pl, best_values) if pl.priced else None
  if own is None or left is None or own <= left:
    return None
  moves = sorted(cheaper_moves(pl, best_values), key=lambda x: x[0])
  options = [(dim, moved) for _, dim, moved in moves]
  for (_, dim, first), (_, _, second) in zip(moves, moves[1:]):
    extra = {k: second[k] for k in second if second[k] != best_values[k]}
    both = pl.plan.config_of({**first, **extra})
    if both is not None:
      options.append((dim, both))
  for dim, values in options:
    seconds = lane_seconds(pl, values)
    if seconds is not None and seconds <= left:
      why = reason(
          "fits_left",
          changes=[(d, best_values[d], values[d]) for d in values if values[d] != best_values[d]],
          own=own / 60,
          cheap=seconds / 60,
          left=left / 60,
      )
      return Candidate(values, "scout", dim, (why,))
  return None


def spread(pl: Planning, start: dict, scouted: Candidate | None) -> list[Candidate]:
  """When the minutes buy fewer than few_rounds batches, the first batch's other structures
  beside the playbook's: the scout (what dominates the price, made cheaper), then the scout
  with one more block (capacity bought back at the scout's price: depth is the lever short
  histories leave), else with the next saving. Each a structure of its own."""
  out = [scouted] if scouted is not None else []
  if scouted is None:
    return out
  base = scouted.values
  options = []
  if "blocks" in pl.space.dims:
    options.append(("blocks", {"blocks": base.get("blocks", 1) + pl.space.dims["blocks"].step}))
  for _, dim, moved in cheaper_moves(pl, base):
    options.append((dim, {k: moved[k] for k in moved if moved[k] != base[k]}))
  for dim, change in options:
    values = pl.plan.config_of({**base, **change})
    if values is None or static_key(pl.space, values) == static_key(pl.space, start):
      continue
    ratio = cost_ratio(pl, start, values)
    if ratio < 1.0 + pl.cfg.same_cost:
      continue  # the spread's structures are all cheaper than the playbook's
    why = reason(
        "spread",
        dim=dim,
        old=base.get(dim),
        new=values[dim],
        ratio=ratio,
    )
    return out + [Candidate(values, "scout", dim, (why,), score=ratio)]
  return out


# ------------------------------------------------------------------ structural moves


@dataclasses.dataclass(frozen=True)
class Exploration:
  """The explore phase's candidates, and the moves it set aside: argued against by the best
  trial's curve (move -> the curve's label), or dimensions the playbook is sure of."""

  candidates: list[Candidate]
  against: dict[str, str]
  sure: list[str]


def combine(pl: Planning, best_values: dict, tried: set) -> list[Candidate]:
  """A structural move that helped its parent in this study, set in the best."""
  out = []
  for move, info in pl.evidence.items():
    dim = move.dimension
    if dim in DYNAMIC_FIELDS or dim not in pl.space.dims or not info.paid:
      continue
    if best_values.get(dim) == info.value:
      continue
    values = pl.plan.config_of({**best_values, dim: info.value})
    if values is None or static_key(pl.space, values) in tried:
      continue
    score = pl.cfg.combine_base + max(info.gain, 0.0) * pl.cfg.combine_weight
    why = reason(
        "combine",
        dim=dim,
        old=best_values[dim],
        new=info.value,
        trial=info.trials[0],
        gain=info.gain,
    )
    out.append(Candidate(values, "combine", dim, (why,), score=score))
  return out


def explore(pl: Planning, best: dict, best_values: dict, tried: set) -> Exploration:
  """Per structural dimension, the most promising untried alternative and its score."""
  late = pl.batches_after < pl.cfg.follow_up_batches
  found, against, sure = [], {}, []
  for dim in pl.space.dims:
    prior = pl.priors.get(dim)
    if dim in DYNAMIC_FIELDS or prior is None or inert(dim, best_values):
      continue
    candidate, argued, is_sure = _explore_dimension(pl, dim, prior, best, best_values, tried, late)
    for move in argued:
      against.setdefault(move, pl.diagnosis.label)
    if is_sure:
      sure.append(dim)
    if candidate is not None:
      found.append(candidate)
  return Exploration(found, against, sure)


def _explore_dimension(
    pl: Planning, dim: str, prior: Prior, best: dict, best_values: dict, tried: set, late: bool
) -> tuple[Candidate | None, list[str], bool]:
  """(the dimension's most promising alternative or None, the moves the best's curve argues
  against on the way, whether the playbook is too sure of it to explore this late)."""
  diag, cfg, evidence = pl.diagnosis, pl.cfg, pl.evidence
  curve_moves = set(diag.suggests) if diag else set()
  argued_against = set(diag.against) if diag else set()
  current = best_values[dim]
  confidence = confidence_after_failures(cfg, prior.confidence, dim, evidence)
  argued = []
  alternatives = [a for a in [prior.value, *prior.alternatives] if a != current]
  for rank, alt in enumerate(alternatives):  # in the prior's order: the most promising first
    values = pl.plan.config_of({**best_values, dim: alt})
    if values is None or static_key(pl.space, values) in tried:
      continue
    direction = direction_of(current, alt)
    if (dim, direction) in argued_against:
      argued.append(f"{dim} {direction}")
      continue  # the best trial's curve argues against it: the next value, if any
    failed = evidence.get(RuleKey(dim, direction, alt))
    if failed and failed.failed:
      continue  # this exact move was tried from some parent and did not pay
    opposite = (dim, OPPOSITE.get(direction))
    if any(i.paid for m, i in evidence.items() if (m.dimension, m.direction) == opposite):
      continue  # the opposite move paid in this study: do not walk back past it
    boost, rule_text = rule_support(pl, dim, direction, alt)
    suggested = (dim, direction) in curve_moves
    if late and confidence >= cfg.sure and not boost and not suggested:
      return None, argued, True  # too late to build on a change the playbook doubts little
    score = (1.0 - confidence) * cfg.rank_decay**rank
    same_way = [i for m, i in evidence.items() if (m.dimension, m.direction) == (dim, direction)]
    if direction != "set" and any(len(i.support) < len(i.contradict) for i in same_way):
      score *= cfg.contradicted
    if suggested:
      score *= cfg.curve_boost
    score *= 1.0 + boost
    why = reason(
        "explore",
        direction=direction,
        dim=dim,
        old=current,
        new=alt,
        best=best["number"],
        confidence=confidence,
        prior_confidence=prior.confidence,
        why=rule_text or prior.rationale,
        curve=diag.label if suggested else None,
    )
    return Candidate(values, "explore", dim, (why,), score=score), argued, False
  return None, argued, False


def confidence_after_failures(
    cfg: PolicyConfig, confidence: float, dim: str, evidence: dict
) -> float:
  """The playbook's confidence in a dimension after this study's evidence: each alternative
  tried without paying shrinks the doubt (1 - confidence) by doubt_halving, as an engineer
  grows surer of a value each time a neighbour of it loses."""
  failed = sum(1 for m, i in evidence.items() if m.dimension == dim and i.failed)
  return 1.0 - (1.0 - confidence) * cfg.doubt_halving**failed if failed else confidence


def rule_support(pl: Planning, dim: str, direction: str, value) -> tuple[float, str | None]:
  """(boost, the rule's text) of the first memory rule that made this move, else (0, None)."""
  for rule in pl.rules:
    key = RuleKey.of(rule["key"])
    if (key.dimension, key.direction) != (dim, direction):
      continue
    if direction == "set" and typed_value(pl.space.dims[dim], key.value) != value:
      continue
    return pl.cfg.rule_base + pl.cfg.rule_weight * expected_gain(rule), f"memory: {rule['rule']}"
  return 0.0, None


def structural_candidates(pl: Planning, best: dict) -> tuple[list[Candidate], Exploration]:
  """The structures to try next, best-first: combinations of changes that paid, untried
  alternatives (ties: combinations first); under minutes ranked by gain per cost."""
  best_values = {k: best["config"][k] for k in pl.space.dims}
  tried = {static_key(pl.space, t["config"]) for t in pl.ctx.trials}
  exploration = explore(pl, best, best_values, tried)
  found = combine(pl, best_values, tried) + exploration.candidates
  if pl.priced:
    found = [per_cost(pl, c, best["config"]) for c in found]
  ranked = sorted(enumerate(found), key=lambda x: (-x[1].score, x[0]))
  return [c for _, c in ranked], exploration


def per_cost(pl: Planning, c: Candidate, best_config: dict) -> Candidate:
  """Under a budget in minutes a move is worth its expected gain over what it costs relative
  to the best's structure (search/cost.py): a dearer model needs evidence that it pays."""
  new, stats = {**best_config, **c.values}, pl.ctx.stats
  if pl.price is not None:  # this machine's measured price, once the study has one
    ratio = pl.price.seconds(new, stats) / pl.price.seconds(best_config, stats)
  else:
    ratio = relative_cost(new, best_config, stats)
  if abs(ratio - 1.0) < pl.cfg.same_cost:
    return c
  return dataclasses.replace(c, score=c.score / ratio).annotated(reason("per_cost", ratio=ratio))


def fit_structures(
    pl: Planning, ranked: list[Candidate], sizes: list[int]
) -> tuple[list[Candidate], list[str]]:
  """(the structures this batch holds, one per size; the moves set aside): each structure's
  lanes, beside those already chosen and the lanes still to fill at the best's structure,
  must finish in the minutes left at the study's measured price."""
  chosen, unfit, committed = [], [], 0.0
  for c in ranked:
    if len(chosen) >= len(sizes):
      break
    i = len(chosen)
    cost = batch_seconds(pl, c.values, sizes[i], sum(sizes[i + 1 :]))
    if cost is not None and committed + cost[0] + cost[1] > pl.ctx.budget.seconds_left:
      unfit.append(text.moved(structural_changes(pl, c.values)))
      continue
    committed += cost[0] if cost else 0.0
    chosen.append(c.annotated(reason("unfit", moves=list(unfit))) if unfit else c)
  return chosen, unfit


def batch_seconds(pl: Planning, values: dict, lanes: int, rest: int) -> tuple | None:
  """(seconds of `lanes` of `values`' structure, seconds of `rest` lanes of the best's) at the
  study's measured price; None without a price or a budget in minutes (everything fits)."""
  budget = pl.ctx.budget
  if (
      not pl.priced
      or pl.price is None
      or budget.seconds_left is None
      or not budget.epochs_per_trial
  ):
    return None
  base, stats, epochs = pl.plan.base, pl.ctx.stats, budget.epochs_per_trial
  own = pl.price.batch_seconds([{**base, **values}] * max(1, lanes), stats, epochs)
  return own, pl.price.batch_seconds([base] * rest, stats, epochs)


def structural_changes(pl: Planning, values: dict) -> list[tuple[str, object]]:
  base = pl.plan.base
  return [(d, values[d]) for d in values if values[d] != base.get(d) and d not in DYNAMIC_FIELDS]


# ------------------------------------------------------------------ a bucket's lanes


def variants(
    pl: Planning,
    values: dict,
    k: int,
    level: int,
    best: dict | None,
    anchored: bool,
    prefer: tuple = (),
) -> list[Candidate]:
  """Up to k configs of `values`' structure with other rates, best-first: the rate scaled to
  a new width, single rate moves by evidence (`prefer`red moves first), seeded draws around
  the center, then the moves that failed before."""
  if k <= 0:
    return []
  diag = pl.diagnosis if best else None
  against = set(diag.against) if diag else set()
  against |= against_width_law(values, best)
  first = list(prefer) + [m for m in (diag.suggests if diag else ()) if m not in against]
  moves, failed = rate_moves(pl, values, first, against)
  out = width_scaled_rate(pl, values, best, anchored)
  where = "this structure" if anchored else "the best configuration"
  curve = {m: diag.label for m in first} if diag else {}
  out += rate_candidates(pl, values, moves, level, k - len(out), "rate_move", where, curve)
  out += draws(pl, values, k - len(out), level, max_tries=pl.cfg.draw_tries_per_lane * k)
  out += rate_candidates(pl, values, failed, level, k - len(out), "retry_failed")
  return out[:k]


def rate_moves(pl: Planning, values: dict, first: list, against: set) -> tuple[list, list]:
  """(moves, failed): single rate moves, the curve's suggestions first, then moves that paid
  in this study (momentum), then the table's order; the moves the curve argues against
  last. Moves that failed failed_moves times without ever paying are set apart."""
  moves = [(r.name, d) for r in dims.movable(pl.space, values) for d in ("up", "down")]
  evidence = {(m.dimension, m.direction): i for m, i in pl.evidence.items()}
  order = {r.name: i for i, r in enumerate(dims.RATE_DIMS)}

  def net(m) -> int:
    return len(evidence[m].support) - len(evidence[m].contradict) if m in evidence else 0

  def failed(m) -> bool:
    i = evidence.get(m)
    return i is not None and not i.support and len(i.contradict) >= pl.cfg.failed_moves

  moves.sort(
      key=lambda m: (
          0 if m in first else 2 if m in against else 1,
          first.index(m) if m in first else 0,
          -net(m),
          order[m[0]],
          0 if m[1] == "up" else 1,
      )
  )
  return [m for m in moves if not failed(m)], [m for m in moves if failed(m)]


def against_width_law(values: dict, best: dict | None) -> set[tuple[str, str]]:
  """A rate move against the width change it rides on: a wider model wants a smaller step
  (never a larger one in the same bucket), a narrower one a larger step."""
  if best is None or not values.get("hidden") or not best["config"].get("hidden"):
    return set()
  if values["hidden"] > best["config"]["hidden"]:
    return {("lr", "up")}
  if values["hidden"] < best["config"]["hidden"]:
    return {("lr", "down")}
  return set()


def width_scaled_rate(pl: Planning, values: dict, best: dict | None, anchored: bool) -> list:
  """When the width changed from the best: its rate under the usual width laws (x the width
  ratio to each power of width_law_powers), so that with the unchanged rate (the bucket's
  center) the lanes bracket the step the new width needs."""
  old = (best or {}).get("config", {}).get("hidden")
  new = values.get("hidden")
  if not (old and new and "lr" in pl.space.dims and new != old):
    return []
  out = []
  for power in pl.cfg.width_law_powers:
    scaled = dims.clip(pl.space, "lr", float(f"{values['lr'] * (old / new) ** power:.3g}"))
    cand = dict(values, lr=scaled)
    if scaled == values["lr"] or pl.plan.reserve(cand) is None:
      continue
    why = reason("width_rate", lr=values["lr"], law=text.width_law(power, old, new))
    out.append(Candidate(cand, "variant", "lr", (why,), anchor=values if anchored else None))
  return out


def rate_move(pl: Planning, values: dict, dim: str, direction: str, level: int) -> dict | None:
  """`values` with one rate moved (its followers with it); None when it cannot move."""
  new = dims.clip(
      pl.space, dim, float(f"{dims.RATES[dim].moved(values[dim], direction, level):.3g}")
  )
  if new == values[dim]:
    return None
  cand = dict(values, **{dim: new})
  for f in dims.followers_of(pl.space, dim, values):
    cand[f.name] = dims.clip(pl.space, f.name, new)
  return cand


def rate_candidates(
    pl: Planning,
    values: dict,
    moves: list,
    level: int,
    k: int,
    code: str,
    where: str = "",
    curve: dict | None = None,
) -> list[Candidate]:
  """Candidates for up to k single rate moves from `values` (its bucket's center)."""
  out = []
  for dim, direction in moves:
    if len(out) >= k:
      break
    cand = rate_move(pl, values, dim, direction, level)
    if cand is None or pl.plan.reserve(cand) is None:
      continue
    why = reason(
        code,
        dim=dim,
        direction=direction,
        old=values[dim],
        new=cand[dim],
        where=where,
        why=dims.RATES[dim].why(direction),
        curve=(curve or {}).get((dim, direction)),
    )
    out.append(Candidate(cand, "variant", dim, (why,), anchor=values))
  return out


def draws(pl: Planning, values: dict, k: int, level: int, max_tries: int) -> list[Candidate]:
  """Up to k seeded draws of the rates around `values` in at most `max_tries` (a follower
  keeps its leader's value where the two were equal)."""
  cfg, space = pl.cfg, pl.space
  rng = np.random.default_rng(len(pl.ctx.trials) * cfg.draw_seed_stride + level)
  drawn = dims.drawn(space)
  out, tries = [], 0
  while len(out) < k and tries < max_tries:
    tries += 1
    cand = dict(values)
    for r in drawn:
      u = rng.uniform(-cfg.draw_span, cfg.draw_span)
      cand[r.name] = dims.clip(
          space, r.name, float(f"{r.drawn_from(values[r.name], level, u):.3g}")
      )
    for r in drawn:
      for f in dims.followers_of(space, r.name, values):
        cand[f.name] = cand[r.name]
    if pl.plan.reserve(cand) is not None:
      out.append(Candidate(cand, "variant", "lr", (reason("draw"),), anchor=values))
  return out


# ------------------------------------------------------------------ nothing left nearby


def jumps(pl: Planning, k: int, seed: int) -> list[Candidate]:
  """Up to k seeded jumps along jump_dims dimensions at once from the base."""
  rng = np.random.default_rng(seed)
  space, base = pl.space, pl.plan.base
  names = list(space.dims)
  out, tries = [], 0
  while len(out) < k and tries < pl.cfg.jump_tries:
    tries += 1
    picked = rng.choice(names, size=min(pl.cfg.jump_dims, len(names)), replace=False)
    changes = {d: _plain(space.dims[d].sample(rng)) for d in picked}
    values = pl.plan.config_of({**{d: base[d] for d in names}, **changes})
    if values is None or pl.plan.reserve(values) is None:
      continue
    out.append(Candidate(values, "explore", str(picked[0]), (reason("jump"),)))
  return out


def _plain(v):
  return v.item() if isinstance(v, np.generic) else v
