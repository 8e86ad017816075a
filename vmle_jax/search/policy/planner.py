"""The offline planner: a data-driven playbook, then moves on evidence. Not an LLM.

For each batch it chooses one structure (static signature) per bucket and
fills the bucket's lanes with variants that differ only in dynamic values
(the rates of dims.py), which share the structure's compiled program:

1. **First batch**: the playbook's configuration (priors.py: every
   dimension's prior from the data's statistics), with the rules of a
   cognition summary or earlier insights applied on top (transfer), and
   variants of its rates. Under a budget in minutes, a structure clearly
   cheaper (the window that covers the median user's history, one width
   down) shares the first batch with it: the search learns early whether the
   cheap model ranks near the dear one, and what a lane-epoch costs here.
2. **Later batches**, from the best trial so far (phases.py):
   - *combine*: a structural change that helped elsewhere but is not in the
     best configuration is added to it (several changes in one trial);
   - *explore*: otherwise the untried structural alternative with the largest
     expected gain: the playbook's uncertainty about the dimension, its rank
     among the alternatives, what this study and the memory say about the
     move, and what the best trial's learning curve suggests;
   - under a budget in minutes, structural moves are ranked by expected gain
     over relative cost, and a structure whose batch the study's measured
     price says cannot finish in the minutes left is not proposed;
   - *refine*: in the last batch, or when no structural move is worth a
     batch, the best structure again with its rates refined in a shrinking
     region. A move is not worth a batch when the best trial's curve argues
     against it (still rising at the cap: no deeper stack, no larger batch),
     or, with fewer than `follow_up_batches` batches left to build on it, when
     the playbook is at least `sure` of the dimension and neither the curve
     nor the memory suggests the move.
   Rate variants are ordered by the best trial's curve: still rising at the
   epoch cap -> a higher rate first; over-fitting -> more dropout first; the
   moves the curve argues against last.

Every weight and threshold is a field of `PolicyConfig` (config.py). Its
reflections read every trial's curve and its outcome against the hypothesis;
its rules are counted from the evidence, never invented. It is
deterministic: the same memory and trials give the same proposals, which
makes studies resumable and reproducible (`bench/replan.py --dry_run`
checks the committed studies against it).
"""

from __future__ import annotations

import math

from vmle_jax.memory.records import relative_gain, structure_credit
from vmle_jax.search.curves import diagnose
from vmle_jax.search.planners.base import Answer
from vmle_jax.search.policy import dims, phases, text
from vmle_jax.search.policy.config import DEFAULT_POLICY, PolicyConfig
from vmle_jax.search.policy.evidence import evidence_rules, improved
from vmle_jax.search.policy.state import Candidate, PlannerContext, reason


def split_lanes(n: int, parts: int) -> list[int]:
  """`n` lanes in `parts` buckets as even as they go (the first ones one larger)."""
  return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


class HeuristicPlanner:
  """See the module docstring."""

  name = "heuristic"
  is_llm = False

  def __init__(self, config: PolicyConfig = DEFAULT_POLICY):
    self.config = config

  def describe(self) -> str:
    return (
        "planner: heuristic (offline and deterministic: a playbook from the data's "
        "statistics, then moves on evidence, lanes filled with rate variants; not an LLM)"
    )

  # ---------------------------------------------------------------- proposals
  def propose(self, context: PlannerContext, n: int, feedback: list[str]) -> Answer:
    del feedback  # its proposals are valid by construction
    pl = phases.Planning.of(context, self.config, n)
    proposals = [c.proposal(pl.plan.base) for c in self.plan(pl, n)]
    return Answer(content={"proposals": proposals})

  def candidates(self, context: PlannerContext, n: int) -> list[Candidate]:
    """The next batch as candidates with their reasons (what `propose` phrases)."""
    return self.plan(phases.Planning.of(context, self.config, n), n)

  def plan(self, pl: phases.Planning, n: int) -> list[Candidate]:
    """The batch's candidates: a structure per bucket, each bucket filled with variants."""
    scored = [t for t in pl.ctx.trials if t.get("value") is not None]
    sizes = split_lanes(n, max(1, math.ceil(n / self.config.max_lanes_per_structure)))
    tried = {phases.static_key(pl.space, t["config"]) for t in pl.ctx.trials}
    last = pl.batches_after <= 0
    refine = bool(scored) and last and len(tried) >= self.config.refine_after_structures
    prefer: tuple = ()
    if scored:
      anchors, note = self._later_structures(pl, sizes, refine)
    else:
      anchors, note = self._first_structures(pl, n), None
      if len(anchors) > len(sizes):  # the scout gets a bucket of its own
        sizes = split_lanes(n, len(anchors))
      if len(anchors) > 2:  # few rounds: the playbook's second lane regularises less
        prefer = (("dropout", "down"),)
    level = min(dims.LEVELS - 1, max(0, len(scored) // max(1, n) - 1)) if scored else 0
    out: list[Candidate] = []
    for (values, center), size in zip(anchors, sizes):
      out += self._bucket(pl, values, center, size, level, note, prefer)
    if len(out) < n:
      out += phases.jumps(pl, n - len(out), len(pl.ctx.trials))
    return out[:n]

  def _first_structures(self, pl: phases.Planning, n: int) -> list[tuple]:
    """(values, center) of the first batch: the playbook's structure (with a summary: moved
    by its rules, the playbook's own beside it, and the nearest data set's best), and a
    scout; when the minutes buy fewer than few_rounds batches of the playbook's structure,
    up to max_first_structures structures (phases.spread), so the one round the study may
    get compares structures, not rates of one."""
    first = phases.first_structure(pl)
    own = phases.own_start(pl, first) if n >= 2 else None  # beside a transferred start
    hedge = [own] if own is not None else []
    source = phases.source_start(pl, [first, *hedge]) if n >= 3 else None
    hedge += [source] if source is not None else []
    scout = phases.scout(pl, first.values) if n >= 2 else None  # a lane for each structure
    rounds = phases.rounds(pl, first.values, n)
    few = rounds is not None and rounds < self.config.few_rounds and n >= 3
    others = phases.spread(pl, first.values, scout) if few else [scout] * (scout is not None)
    if few:
      others = others[: max(0, min(n - 2, self.config.max_first_structures - 1) - len(hedge))]
    others = hedge + others
    if few and others:
      first = first.annotated(
          reason(
              "few_rounds",
              rounds=rounds,
              few=self.config.few_rounds,
              structures=1 + len(others),
              lane_minutes=phases.lane_seconds(pl, first.values) / 60,
              source=pl.ctx.budget.price_source or "estimated",
          )
      )
    return ([(first.values, first)] + [(c.values, c) for c in others])[:n]

  def _later_structures(self, pl: phases.Planning, sizes: list[int], refine: bool) -> tuple:
    """(anchors, note): the structures of a later batch, the best's filling what is left,
    and why no structural move was proposed (None when one was, or in the last batch)."""
    best = pl.ctx.best
    best_values = {k: best["config"][k] for k in pl.space.dims}
    if refine:
      ranked, exploration = [], None
    else:
      ranked, exploration = phases.structural_candidates(pl, best)
    chosen, unfit = phases.fit_structures(pl, ranked, sizes)
    anchors = [(c.values, c) for c in chosen]
    if len(anchors) < len(sizes):
      cheaper = phases.fitting_cheaper(pl, best_values)  # the best's own lane no longer fits
      if cheaper is not None:
        anchors.append((cheaper.values, cheaper))
    while len(anchors) < len(sizes):
      anchors.append((best_values, None))
    note = None
    if exploration is not None and (exploration.against or exploration.sure or unfit):
      note = reason(
          "refine_instead",
          against=exploration.against,
          unfit=unfit,
          sure=exploration.sure,
          batches_after=pl.batches_after,
          threshold=self.config.sure,
      )
    return anchors, note

  def _bucket(
      self, pl, values: dict, center, size: int, level: int, note, prefer: tuple = ()
  ) -> list[Candidate]:
    """A bucket: its center (a new structure, when not proposed yet) and rate variants; a
    bucket at the best's structure refines one level finer and says why, if it has to."""
    got = [center] if center is not None and pl.plan.reserve(values) is not None else []
    if center is None:
      level = min(dims.LEVELS - 1, level + 1)
    best = pl.ctx.best
    got += phases.variants(pl, values, size - len(got), level, best, center is not None, prefer)
    if center is None and got and note is not None:
      got[0] = got[0].annotated(note)
    return got

  # ---------------------------------------------------------------- reflection
  def reflect(self, context: PlannerContext, batch: list[dict]) -> Answer:
    seen = {t["number"]: t for t in context.trials}
    seen.update({t["number"]: t for t in batch})
    credit = structure_credit(list(seen.values()))
    reflections, diagnoses = [], []
    for t in batch:
      p = t.get("proposal") or {}
      parent, own, by = p.get("parent_value"), t.get("value"), None
      if t["number"] in credit:  # a structure is judged at its best rate in the bucket
        value, by = credit[t["number"]]
        t = {**t, "value": value}
      d = diagnose(t, context.max_epochs)
      reflections.append(
          {
              "trial": t["number"],
              "text": text.reflection(
                  p,
                  t["status"],
                  t.get("error"),
                  parent,
                  own,
                  t.get("value"),
                  relative_gain(t.get("value"), parent),
                  bool(improved(t, self.config.min_gain)),
                  by,
                  d.text if d else None,
              ),
          }
      )
      if d is not None:
        diagnoses.append(
            {
                "trial": t["number"],
                "label": d.label,
                "text": d.text,
                "suggests": [list(s) for s in d.suggests],
            }
        )
    rules = evidence_rules(
        list(context.trials),
        context.dataset,
        context.backbone,
        context.playbook,
        self.config.min_gain,
    )
    return Answer(content={"reflections": reflections, "diagnoses": diagnoses, "rules": rules})
