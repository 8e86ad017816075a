"""The agent: recall -> propose -> validate -> train -> reflect -> write memory, per batch.

`AgentStrategy` plugs a planner (heuristic, gemini, replay) into the shared
study loop (search/study.py). For each batch it builds the planner's context
from the SQLite memory (data-set stats, the study's trials, the current best,
the coverage map, insights of this and similar data sets, the backbone's
cognition summary), asks for proposals, validates every one against the
search space (unknown parameter, out-of-range value, duplicate of a finished
trial: rejected with the reason, re-asked with the reasons in the prompt, at
most `max_retries` times, then the heuristic planner fills the batch and the
fallback is recorded), and after training asks for reflections and rules,
which become insights. At the end of the study the insights are distilled
into the backbone's cognition summary. Nothing a planner writes is executed.
"""

from __future__ import annotations

import json
import re
import time
from typing import Callable

import numpy as np

from vmle_jax.config import TrialConfig, canonical_json
from vmle_jax.memory import summaries
from vmle_jax.memory.records import RuleKey, confidence, direction_of
from vmle_jax.memory.store import Store
from vmle_jax.search.recall import RECALLS, build_context, playbook_start
from vmle_jax.search.curves import SUGGESTS
from vmle_jax.search.planners.base import DIRECTIONS, Answer
from vmle_jax.search.policy import text
from vmle_jax.search.policy.dims import rides_along
from vmle_jax.search.policy.evidence import evidence_rules
from vmle_jax.search.policy.phases import rules_set_aside_by
from vmle_jax.search.policy.planner import HeuristicPlanner
from vmle_jax.search.policy.state import PlannerContext
from vmle_jax.search.space import SearchSpace, SpaceError, typed_value
from vmle_jax.search.strategies import Proposal, Strategy, tpe_after

RANDOM_FILL_TRIES = 20  # draws per lane a random fill may make (duplicates are rejected later)
TPE_LANE = "tpe"  # the source of a lane TPE proposed inside the agent's batch


def tpe_lanes(share: float, n: int, scored: bool) -> int:
  """Lanes of an n-lane batch that TPE proposes: none before the study has a scored trial
  (the first batch is the playbook's), else `share` of them rounded, at least one when
  share > 0, and never the planner's last lane."""
  if share <= 0 or not scored or n < 2:
    return 0
  return min(n - 1, max(1, round(share * n)))


def parse_json(content) -> dict:
  """A planner answer as a dict; LLM text may wrap the JSON in a code fence."""
  if isinstance(content, dict):
    return content
  raw = str(content).strip()
  fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", raw, re.S)
  if fence:
    raw = fence.group(1)
  value = json.loads(raw)
  if not isinstance(value, dict):
    raise ValueError("the answer is JSON but not an object")
  return value


def validate_proposals(
    content, space: SearchSpace, base: dict, done: set[str], trial_numbers: dict[str, int]
) -> tuple[list[tuple[TrialConfig, dict]], list[str]]:
  """Accepted (config, item) pairs and the reasons every other proposal was rejected."""
  try:
    answer = parse_json(content)
  except (ValueError, json.JSONDecodeError) as e:
    return [], [f"the answer is not valid JSON ({e}); answer with one JSON object"]
  items = answer.get("proposals")
  if not isinstance(items, list):
    return [], ["the answer has no 'proposals' list"]
  accepted, reasons, seen = [], [], set(done)
  for i, item in enumerate(items, 1):
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("changes"), dict)
        or not item["changes"]
    ):
      reasons.append(f"proposal {i}: needs a non-empty 'changes' object")
      continue
    changes = item["changes"]
    unknown = [k for k in changes if k not in space.dims]
    if unknown:
      reasons.append(
          f"proposal {i}: {', '.join(map(repr, unknown))} "
          f"{'is not a' if len(unknown) == 1 else 'are not'} searchable parameter"
          f"{'' if len(unknown) == 1 else 's'} (searchable: {', '.join(space.dims)})"
      )
      continue
    try:
      cfg = space.validate({**{k: base[k] for k in space.dims}, **changes})
    except SpaceError as e:
      reasons.append(f"proposal {i}: {e}")
      continue
    key = cfg.canonical_json()
    if key in seen:
      where = trial_numbers.get(key)
      reasons.append(
          f"proposal {i}: duplicates "
          + (
              f"trial {where}, already run"
              if where is not None
              else "another proposal of this batch"
          )
      )
      continue
    seen.add(key)
    accepted.append((cfg, item))
  return accepted, reasons


class AgentStrategy(Strategy):
  """A planner driving the study loop; see the module docstring."""

  def __init__(
      self,
      planner,
      space: SearchSpace,
      max_retries: int = 2,
      log: Callable[[str], None] = print,
      transcript=None,
      recall: str = "memory",
      summary: dict | None = None,
      planner_budget_s: float | None = None,
      tpe_share: float = 0.0,
      seed: int = 0,
  ):
    """`recall="memory"` reads insights and the latest summary from the whole memory;
    `recall="study"` (fair comparisons) reads only this study's trials and insights and
    the `summary` given here, if any. `tpe_share` of every later batch's lanes are TPE's
    proposals from the study's trials (`tpe_lanes`), seeded from `seed`."""
    self.planner = planner
    self.space = space
    self.max_retries = max_retries
    self.log = log
    self.name = f"agent:{planner.name}"
    self.fallback = HeuristicPlanner()
    self.transcript = transcript  # a Transcript recording every answer, or None
    self.store: Store | None = None
    self.study: dict | None = None
    self.data = None
    if recall not in RECALLS:
      raise ValueError(f"recall={recall!r}: not one of {', '.join(RECALLS)}")
    self.recall = recall
    self.fixed_summary = summary
    self.planner_budget_s = planner_budget_s  # per-study cap on the planner's time
    if not 0.0 <= tpe_share < 1.0:
      raise ValueError(f"tpe_share={tpe_share}: must be in [0, 1) (the planner keeps a lane)")
    self.tpe_share = tpe_share
    self.seed = seed

  def _planner(self):
    """The planner to ask now: the configured one, or the heuristic once an LLM planner has
    used up the study's planner time."""
    if self.planner_budget_s is None or not self.planner.is_llm:
      return self.planner
    spent = sum(
        c["latency_s"] or 0.0
        for c in self.store.llm_calls(self.study["id"])
        if c["planner"] == self.planner.name
    )
    if spent < self.planner_budget_s:
      return self.planner
    self.log(
        f"planner time cap reached ({spent:.0f} s of {self.planner_budget_s:.0f} s): the "
        "heuristic planner takes over"
    )
    return self.fallback

  # ---------------------------------------------------------------- binding
  def bind(self, store: Store, study: dict, data) -> None:
    """Called by the study loop once the study exists."""
    self.store, self.study, self.data = store, study, data
    self.log(self.planner.describe())
    if self.tpe_share > 0:
      self.log(
          f"TPE lanes: Optuna TPE proposes {self.tpe_share:.0%} of every batch after the first "
          "from this study's trials; the planner plans the rest"
      )

  def tokens_used(self) -> int:
    return self.store.tokens_used(self.study["id"]) if self.store else 0

  # ---------------------------------------------------------------- recall
  def context(self) -> PlannerContext:
    """Everything the planner may read (search/recall.py)."""
    return build_context(
        self.store, self.study, self.space, self.data.fingerprint(), self.recall, self.fixed_summary
    )

  # ---------------------------------------------------------------- propose
  def ask(self, n: int, done: set[str]) -> list[Proposal]:
    """n proposals: the planner's valid answers (re-asked with the reasons a proposal was
    rejected), topped up by the heuristic planner; each logged with its hypothesis."""
    ctx = self.context()
    taken = set(ctx.done) | done
    best = ctx.best
    base = best["config"] if best else self.space.default_config().to_dict()
    numbers = {canonical_json(t["config"]): t["number"] for t in ctx.trials}
    planner = self._planner()
    k = self._tpe_count(ctx, n)
    accepted = self._ask_planner(planner, ctx, n - k, base, numbers, taken)
    if len(accepted) < n - k:
      accepted += self._fill_from_fallback(planner, ctx, n - k, len(accepted), base, numbers, taken)
    if k:
      accepted += self._tpe_lanes(ctx, n - len(accepted), base, taken)
    proposals = []
    for cfg, item, source in accepted:
      done.add(cfg.canonical_json())
      note = proposal_note(
          item,
          base,
          cfg,
          best,
          source,
          fallback=source not in (self.planner.name, TPE_LANE),
          space=self.space,
          trials=ctx.trials,
      )
      proposals.append(Proposal(cfg, note))
      self.log(f"  propose [{source}] {text.change(note)}: {note['hypothesis']}")
    return proposals

  def _ask_planner(
      self, planner, ctx: PlannerContext, n: int, base: dict, numbers: dict, taken: set
  ) -> list[tuple]:
    """(config, item, planner name) of the planner's valid proposals, up to n; a rejected
    answer is re-asked with its reasons, at most max_retries times (none for the fallback)."""
    accepted: list[tuple[TrialConfig, dict, str]] = []
    feedback: list[str] = []
    for _ in range(self.max_retries + 1 if planner is not self.fallback else 0):
      want = n - len(accepted)
      if want <= 0:
        break
      t0 = time.perf_counter()
      try:
        answer = planner.propose(ctx.with_done(taken), want, feedback)
      except Exception as e:  # network errors, quota, timeouts after the client's retries
        self._record(
            planner,
            "propose",
            Answer(content="", latency_s=time.perf_counter() - t0),
            "error",
            repr(e),
        )
        self.log(f"planner error: {e!r}")
        break
      if self.transcript is not None:
        self.transcript.record("propose", answer.content)
      got, reasons = validate_proposals(answer.content, self.space, base, taken, numbers)
      for cfg, item in got[:want]:
        taken.add(cfg.canonical_json())
        accepted.append((cfg, item, planner.name))
      outcome = (
          "ok"
          if not reasons
          else ("invalid_json" if not got and "JSON" in reasons[0] else "rejected")
      )
      self._record(planner, "propose", answer, outcome, "; ".join(reasons) or None)
      if reasons:
        self.log(f"rejected {len(reasons)} proposal(s) from {planner.name}: {'; '.join(reasons)}")
        feedback = reasons
    return accepted

  def _tpe_count(self, ctx: PlannerContext, n: int) -> int:
    """TPE's lanes of the n asked for: its share of the batch, or, when the loop completes a
    batch a kill cut short (fewer trials than the batch recorded it was asked for), the
    share of the whole batch less the TPE lanes it already holds."""
    if self.tpe_share <= 0:
      return 0
    last = max((t["batch"] for t in ctx.trials if t.get("batch") is not None), default=None)
    in_last = [t for t in ctx.trials if last is not None and t.get("batch") == last]
    asked = (in_last[0]["proposal"].get("batch_trials") if in_last else None) or 0
    if len(in_last) >= asked:
      return tpe_lanes(self.tpe_share, n, ctx.best is not None)
    scored_before = any(t["value"] is not None for t in ctx.trials if t.get("batch") != last)
    have = sum(1 for t in in_last if t["proposal"].get("planner") == TPE_LANE)
    return max(0, min(n, tpe_lanes(self.tpe_share, asked, scored_before) - have))

  def _tpe_lanes(self, ctx: PlannerContext, k: int, base: dict, taken: set) -> list[tuple]:
    """(config, item, "tpe") for k lanes from TPE fitted on the study's finished trials: the
    regions and dimensions the planner's local moves do not reach (the seeded control found
    them on HSTU: one block, attention dropout, one head)."""
    tpe, skipped = tpe_after(self.space, ctx.trials, self.seed + len(ctx.trials))
    if skipped:
      self.log(f"  tpe lanes: {skipped} trial(s) outside the space were not shown to TPE")
    out = []
    for p in tpe.ask(k, taken):
      values = self.space.values_of(p.config)
      changes = {d: v for d, v in values.items() if v != base.get(d)}
      item = {
          "changes": changes or values,
          "dimension": next(iter(changes), None),
          "kind": "tpe",
          "hypothesis": text.MAIN["tpe"]({"trials": len(ctx.trials), "changed": len(changes)}),
          "expected_effect": text.EXPECTED["tpe"],
          "risk": text.RISK["tpe"],
      }
      out.append((p.config, item, TPE_LANE))
    return out

  def _fill_from_fallback(
      self, planner, ctx: PlannerContext, n: int, have: int, base: dict, numbers: dict, taken: set
  ) -> list[tuple]:
    """(config, item, "heuristic") for the n - have proposals the planner did not give. Should
    the heuristic itself fail, seeded random draws from the space fill the batch: a planner
    error is recorded, never fatal."""
    try:
      answer = self.fallback.propose(ctx.with_done(taken), n - have, [])
    except Exception as e:  # a defect of the offline planner must not end the study
      self._record(self.fallback, "propose", Answer(content=""), "error", repr(e))
      self.log(f"heuristic planner error: {e!r}; random draws from the space fill the batch")
      answer = Answer(
          content={"proposals": random_fill(self.space, len(ctx.trials), n - have, taken)}
      )
    got, _ = validate_proposals(answer.content, self.space, base, taken, numbers)
    if got and self.planner.name != "heuristic":
      self._record(
          self.fallback,
          "propose",
          Answer(content=""),
          "fallback",
          f"{planner.name} gave {have} valid of {n}; heuristic filled {len(got)}",
      )
      self.log(f"fallback: the heuristic planner filled {len(got)} proposal(s)")
    return [(cfg, item, self.fallback.name) for cfg, item in got[: n - have]]

  def tell(self, config: TrialConfig, value: float | None) -> None:
    pass  # results are read back from the store in after_batch

  def resume(self, batches, sizes=None) -> int:
    return 0  # nothing to replay: every proposal is derived from the memory it reads

  # ---------------------------------------------------------------- reflect
  def after_batch(self, trial_ids: list[int]) -> None:
    """Reflections on the batch (curves read), then the study's rules written as insights."""
    ctx = self.context()
    batch = [t for t in ctx.trials if t["id"] in set(trial_ids)]
    for t in batch:  # variants are compared with their bucket's center: now known
      stored = self.store.trials_by_id([t["id"]])[0].proposal or {}
      if t["proposal"].get("parent_value") != stored.get("parent_value"):
        self.store.update_trial(t["id"], proposal=t["proposal"])
    diagnoses = [{"trial": t["number"], **t["diagnosis"]} for t in batch if t.get("diagnosis")]
    if self.transcript is not None and diagnoses:
      self.transcript.record("diagnose", diagnoses)
    for d in diagnoses:
      self.log(f"  curve of trial {d['trial']}: {d['text']}")
    content = None
    planner = self._planner()
    for attempt in range(
        self.max_retries + 1 if planner is not self.fallback or self.planner is self.fallback else 0
    ):
      t0 = time.perf_counter()
      try:
        answer = planner.reflect(ctx, batch)
      except Exception as e:
        self._record(
            planner,
            "reflect",
            Answer(content="", latency_s=time.perf_counter() - t0),
            "error",
            repr(e),
        )
        self.log(f"reflection error: {e!r}")
        break
      if self.transcript is not None:
        self.transcript.record("reflect", answer.content)
      try:
        content = parse_json(answer.content)
        if not isinstance(content.get("reflections"), list) or not isinstance(
            content.get("rules"), list
        ):
          raise ValueError("needs 'reflections' and 'rules' lists")
        self._record(planner, "reflect", answer, "ok")
        break
      except (ValueError, json.JSONDecodeError) as e:
        self._record(planner, "reflect", answer, "invalid_json", str(e))
        content = None
    source = self.planner.name
    if content is None:
      content = self.fallback.reflect(ctx, batch).content
      source = "heuristic" if self.planner.name == "heuristic" else "heuristic (fallback)"
      if source != "heuristic":
        self.log("reflection: the planner gave no usable answer; the heuristic reflected")
    by_number = {t["number"]: t for t in ctx.trials}
    self._write_curve_insights(ctx)
    batch_numbers = {t["number"] for t in batch}
    set_aside = rules_set_aside_by(ctx, batch_numbers, self.fallback.config.min_gain)
    for n, rules in sorted(set_aside.items()):
      for rule in rules:
        self.log(
            f"  memory rule set aside from the next batch on: {rule} (trial {n} contradicts it)"
        )
    for r in content.get("reflections", []):
      if isinstance(r, dict) and r.get("trial") in batch_numbers and isinstance(r.get("text"), str):
        note = text.set_aside_note(set_aside.get(r["trial"], []))
        self.store.update_trial(by_number[r["trial"]]["id"], reflection=(r["text"] + note)[:2000])
    self._write_insights(ctx, content.get("rules", []), by_number, source)

  def _write_curve_insights(self, ctx: PlannerContext) -> None:
    """One insight per curve shape seen in the study, with the move it suggests."""
    groups: dict[str, list[dict]] = {}
    for t in ctx.trials:
      d = t.get("diagnosis")
      if d and d["label"] in ("under-trained", "over-fitting", "flat", "diverged"):
        groups.setdefault(d["label"], []).append(t)
    for label, ts in groups.items():
      dim, direction = SUGGESTS[label][0]
      words = (label, ctx.max_epochs, ctx.dataset, dim, direction == "up")
      self.store.upsert_insight(
          self.study["dataset_id"],
          self.study["id"],
          self.study["backbone"],
          text.curve_sentence(len(ts), [t["number"] for t in ts], *words),
          RuleKey(dim, direction, basis="curve", shape=label),
          [t["id"] for t in ts],
          [],
          confidence(len(ts), 0),
          "curves",
          phrase=lambda support, contradict, w=words: text.curve_sentence(support, [], *w),
      )

  def _write_insights(self, ctx: PlannerContext, rules: list, by_number: dict, source: str) -> None:
    """Rules become insights; support and contradiction are recounted from the evidence, and
    an insight several studies hold is worded from the merged counts."""
    evidence = {
        RuleKey(r["dimension"], r["direction"], r["value"]): r
        for r in evidence_rules(list(ctx.trials), ctx.dataset, ctx.backbone)
    }
    for r in rules:
      if (
          not isinstance(r, dict)
          or r.get("dimension") not in self.space.dims
          or r.get("direction") not in DIRECTIONS
          or not isinstance(r.get("rule"), str)
      ):
        continue
      value = typed_value(self.space.dims[r["dimension"]], r.get("value"))
      key = RuleKey(r["dimension"], r["direction"], value)
      phrase = None
      if key in evidence:  # the trials decide, whatever the planner claimed
        support = evidence[key]["supporting_trials"]
        contradict = evidence[key]["contradicting_trials"]
        start = (ctx.playbook or {}).get(key.dimension)
        words = (ctx.dataset, ctx.backbone, None if start is None else start.value)
        phrase = lambda s, c, k=key, w=words: text.rule_sentence(k, s, c, *w)  # noqa: E731
      else:
        support = [n for n in r.get("supporting_trials", []) if n in by_number]
        contradict = [n for n in r.get("contradicting_trials", []) if n in by_number]
      if not support and not contradict:
        continue
      self.store.upsert_insight(
          self.study["dataset_id"],
          self.study["id"],
          self.study["backbone"],
          r["rule"][:300],
          key,
          [by_number[n]["id"] for n in support],
          [by_number[n]["id"] for n in contradict],
          confidence(len(support), len(contradict)),
          source,
          phrase=phrase,
      )

  def rederive_insights(self) -> int:
    """Writes the insights the heuristic's reflections leave on this study's trials (curve
    shapes and every move's evidence) and returns how many this study now owns.

    For a study copied out of a memory written before insights were merged across studies
    (schema version 6): there another study of the same data set may have taken its rows
    over, and the copy would reach the summary with none (bench/transfer.py)."""
    ctx = self.context()
    by_number = {t["number"]: t for t in ctx.trials}
    self._write_curve_insights(ctx)
    rules = self.fallback.reflect(ctx, list(ctx.trials)).content["rules"]
    self._write_insights(ctx, rules, by_number, self.fallback.name)
    return len(self.store.insights(study_id=self.study["id"]))

  # ---------------------------------------------------------------- finish
  def finish(self) -> dict | None:
    """Recounts this study's tested insights from all its trials, then distills the insights
    into a new version of the backbone's cognition summary."""
    ctx = self.context()
    # The moves this study wrote insights on, recounted with the evidence of every trial
    # (a structural move's bucket is complete only now); each keeps who wrote it.
    sources = {
        RuleKey.of(i["key"]): i["source"]
        for i in self.store.insights(study_id=self.study["id"])
        if (i.get("key") or {}).get("basis") != "curve"
    }
    by_number = {t["number"]: t for t in ctx.trials}
    for r in evidence_rules(list(ctx.trials), ctx.dataset, ctx.backbone):
      key = RuleKey(r["dimension"], r["direction"], r["value"])
      if key in sources:
        self._write_insights(ctx, [r], by_number, sources[key])
    start = {d: p.value for d, p in ctx.playbook.items()}
    version = summaries.distill(
        self.store,
        self.study["backbone"],
        provenance={"study": self.study["name"], "playbook": {ctx.dataset: start}},
        start_of=playbook_start(self.space),
    )
    self.log(f"cognition summary for {self.study['backbone']}: version {version}")
    return self.store.summary(self.study["backbone"], version)

  def _record(self, planner, purpose: str, answer: Answer, outcome: str, detail=None) -> None:
    self.store.log_llm_call(
        self.study["id"],
        planner.name,
        answer.model,
        purpose,
        outcome,
        prompt_chars=answer.prompt_chars,
        answer_chars=answer.answer_chars,
        prompt_tokens=answer.prompt_tokens,
        answer_tokens=answer.answer_tokens,
        thinking_tokens=answer.thinking_tokens,
        latency_s=answer.latency_s,
        detail=detail,
    )


def random_fill(space: SearchSpace, seed: int, k: int, done: set[str]) -> list[dict]:
  """Up to k proposals drawn uniformly from the space (seeded), none of them in `done`: the
  last resort when every planner failed, so the batch still trains and the study goes on."""
  rng = np.random.default_rng(seed)
  out, seen = [], set(done)
  for _ in range(RANDOM_FILL_TRIES * max(1, k)):
    if len(out) >= k:
      break
    cfg = space.sample(rng)
    if cfg.canonical_json() in seen:
      continue
    seen.add(cfg.canonical_json())
    values = space.values_of(cfg)
    if not values:
      break  # nothing is searched: no proposal could differ
    out.append(
        {
            "changes": values,
            "dimension": next(iter(values)),
            "kind": "random",
            "hypothesis": text.MAIN["random"]({}),
            "expected_effect": text.EXPECTED["random"],
            "risk": text.RISK["random"],
        }
    )
  return out


def proposal_note(
    item: dict,
    base: dict,
    cfg: TrialConfig,
    best: dict | None,
    source: str,
    fallback: bool,
    space: SearchSpace | None = None,
    trials=(),
) -> dict:
  """What the memory keeps of a proposal: the change, its parent, hypothesis and risk.

  The parent is the best trial, or the proposal's `anchor` (a rate variant's
  center configuration, trained in the same bucket): the change and, once it
  is known, the gain are measured against it."""
  new = cfg.to_dict()
  anchor_key, ref = None, base
  anchor = item.get("anchor")
  if isinstance(anchor, dict) and space is not None:
    try:
      ref_cfg = space.validate({**{k: base[k] for k in space.dims}, **anchor})
      ref, anchor_key = ref_cfg.to_dict(), ref_cfg.canonical_json()
    except SpaceError:
      ref = base
  changed = [k for k in sorted(new) if new[k] != ref.get(k)]
  # One move: a rate with the rates that follow it (dropout and attention dropout).
  moved = [k for k in changed if not rides_along(k, new, changed)]
  dim = item.get("dimension") if item.get("dimension") in changed else next(iter(changed), None)
  old_value, new_value = ref.get(dim), new.get(dim)
  return {
      "planner": source,
      "fallback": fallback,
      "kind": str(item.get("kind") or "move")[:20],
      "hypothesis": str(item.get("hypothesis", ""))[:500],
      "expected_effect": str(item.get("expected_effect", ""))[:200],
      "risk": str(item.get("risk", ""))[:200],
      "dimension": dim,
      "direction": None if dim is None else direction_of(old_value, new_value),
      "old_value": old_value,
      "new_value": new_value,
      "changed": changed,
      "one_change": len(moved) == 1,
      **_parent(anchor_key, best, trials),
  }


def _parent(anchor_key: str | None, best: dict | None, trials) -> dict:
  if anchor_key is None:
    return {
        "parent_number": best["number"] if best else None,
        "parent_value": best["value"] if best else None,
    }
  for t in trials:
    if canonical_json(t["config"]) == anchor_key:
      return {"anchor_key": anchor_key, "parent_number": t["number"], "parent_value": t["value"]}
  return {"anchor_key": anchor_key, "parent_number": None, "parent_value": None}
