"""What a study's trials say about each move: the evidence table the planner and memory read.

A trial that changed one thing from its parent (the best it started from, or
its bucket's center) is evidence about that move (`trial_move`): it supports
the move when it beat its parent by `min_gain`, else it contradicts it. A
structural move is judged at the best rate its structure reached in the same
batch (`credited`). `study_evidence` counts every move of a study once;
the insights the agent writes (`evidence_rules`) and the planner's combine
and explore phases are views of that one table.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vmle_jax.memory.records import RuleKey, relative_gain, structure_credit
from vmle_jax.search.policy import text
from vmle_jax.search.policy.config import DEFAULT_POLICY


def trial_move(trial: dict) -> RuleKey | None:
  """The move of a trial's single change from its parent or anchor."""
  p = trial.get("proposal") or {}
  if not p.get("dimension") or "direction" not in p or p.get("one_change") is False:
    return None  # several changes at once: no single move to credit
  return RuleKey(p["dimension"], p["direction"], p.get("new_value"))


def improved(trial: dict, min_gain: float = DEFAULT_POLICY.min_gain) -> bool | None:
  """Whether a trial beat its parent by `min_gain` (None when it has no parent value)."""
  parent = (trial.get("proposal") or {}).get("parent_value")
  if parent is None:
    return None
  value = trial.get("value")
  return value is not None and value > parent * (1 + min_gain)


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


@dataclasses.dataclass
class MoveEvidence:
  """One move's record in a study: the trials that supported and contradicted it, their
  relative gains over their parents, and the value it moved to."""

  value: object
  trials: list[int] = dataclasses.field(default_factory=list)  # every test, in study order
  support: list[int] = dataclasses.field(default_factory=list)
  contradict: list[int] = dataclasses.field(default_factory=list)
  gains: list[float] = dataclasses.field(default_factory=list)

  @property
  def gain(self) -> float:
    """The mean relative gain over the parents (0 without one)."""
    return float(np.mean(self.gains)) if self.gains else 0.0

  @property
  def paid(self) -> bool:
    return len(self.support) > len(self.contradict)

  @property
  def failed(self) -> bool:
    return len(self.support) <= len(self.contradict)


def study_evidence(
    trials: list[dict], min_gain: float = DEFAULT_POLICY.min_gain
) -> dict[RuleKey, MoveEvidence]:
  """Per single move of the study: who supported and contradicted it, and its gains."""
  out: dict[RuleKey, MoveEvidence] = {}
  for t in credited(trials):
    move, gain = trial_move(t), improved(t, min_gain)
    if move is None or gain is None:
      continue
    info = out.setdefault(move, MoveEvidence(t["proposal"].get("new_value")))
    (info.support if gain else info.contradict).append(t["number"])
    info.trials.append(t["number"])
    g = relative_gain(t.get("value"), t["proposal"].get("parent_value"))
    if g is not None:
      info.gains.append(g)
  return out


def evidence_rules(
    trials: list[dict],
    dataset: str,
    backbone: str,
    priors: dict | None = None,
    min_gain: float = DEFAULT_POLICY.min_gain,
) -> list[dict]:
  """One rule per move tried in the study, phrased from its counts (text.rule_sentence).

  With the playbook's priors the rule says where the playbook started, so a
  summary reads "raise dropout (playbook start 0.4)": a move relative to what
  the statistics suggested, which is what transfers to other data."""
  rules = []
  for move, info in study_evidence(trials, min_gain).items():
    start = (priors or {}).get(move.dimension)
    rules.append(
        {
            "rule": text.rule_sentence(
                move,
                len(info.support),
                len(info.contradict),
                dataset,
                backbone,
                None if start is None else start.value,
            ),
            "dimension": move.dimension,
            "direction": move.direction,
            "value": move.value,
            "supporting_trials": info.support,
            "contradicting_trials": info.contradict,
        }
    )
  return rules
