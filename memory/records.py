"""The records the memory hands out: a trial, the key of a tuning rule, a rule's confidence.

`Trial` is one row of the `trials` table, typed and frozen, with the one rule
everything ranks trials by (`Trial.value`). `RuleKey` names what a rule is
about (a dimension moved up or down, or set to a value); insights, cognition
summaries and the planners' evidence all use it, so a rule learned in one
place is found in another. `confidence` is the one formula for how far the
evidence for a rule can be trusted.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from vmle_jax.config import DYNAMIC_FIELDS, canonical_json


def relative_gain(value: float | None, parent: float | None) -> float | None:
  """The relative change of a value over its parent's (None without both)."""
  if not parent or value is None:
    return None
  return float(value) / float(parent) - 1.0


FINAL_STATUSES = ("finished", "stopped", "pruned", "diverged", "failed")
SCORELESS = ("diverged", "failed")  # final statuses whose metrics do not count
SELECT_METRIC = "NDCG@10"
DIRECTIONS = ("up", "down", "set")


def direction_of(old, new) -> str:
  """The direction of a move from `old` to `new`: up, down, or set (categorical values)."""
  if isinstance(old, (bool, str)) or isinstance(new, (bool, str)):
    return "set"
  return "up" if new > old else "down"


@dataclasses.dataclass(frozen=True)
class Trial:
  """One trial as the memory stores it (config and metrics as plain JSON values)."""

  id: int
  study_id: int
  number: int
  config: dict
  signature: str
  status: str  # running | finished | stopped | pruned | diverged | failed | interrupted
  bucket: int | None = None
  batch: int | None = None
  valid: dict | None = None
  test: dict | None = None
  epochs: int | None = None
  best_epoch: int | None = None
  steps: int | None = None
  seconds: float | None = None
  bucket_seconds: float | None = None
  planner_seconds: float | None = None
  curve: list | None = None
  proposal: dict | None = None
  reflection: str | None = None
  error: str | None = None
  created_at: float | None = None
  finished_at: float | None = None

  @property
  def value(self) -> float | None:
    """The value everything ranks by: validation NDCG@10 at the best epoch; None while the
    trial runs, when it diverged or failed, or before its first validation."""
    v = (self.valid or {}).get(SELECT_METRIC)
    if v is None or self.status in SCORELESS or self.status not in FINAL_STATUSES:
      return None
    return float(v)

  @property
  def config_key(self) -> str:
    """The trial's identity: its config's canonical JSON (as TrialConfig.canonical_json)."""
    return canonical_json(self.config)

  @classmethod
  def from_row(cls, row: dict) -> "Trial":
    return cls(**{f.name: row.get(f.name) for f in dataclasses.fields(cls)})


def best_trial(trials) -> Trial | None:
  """The trial with the highest value (the earliest on ties); None if none has one."""
  scored = [t for t in trials if t.value is not None]
  return max(scored, key=lambda t: t.value) if scored else None


@dataclasses.dataclass(frozen=True)
class RuleKey:
  """What a tuning rule is about: `dimension` moved `direction` (up, down, or set to `value`).

  `basis` marks rules read off learning curves ("curve", with the curve's
  `shape`) rather than tested by trials; they never merge with tested rules.
  """

  dimension: str
  direction: str
  value: Any = None
  basis: str | None = None
  shape: str | None = None

  def __post_init__(self):
    if self.direction not in DIRECTIONS:
      raise ValueError(f"direction={self.direction!r}: not one of {', '.join(DIRECTIONS)}")
    if self.direction != "set" and self.value is not None:
      object.__setattr__(self, "value", None)  # only "set" names a value

  @property
  def move(self) -> "RuleKey":
    """The move itself, whatever the rule's basis (what tested evidence is keyed by)."""
    return RuleKey(self.dimension, self.direction, self.value)

  def to_dict(self) -> dict:
    out = {"dimension": self.dimension, "direction": self.direction, "value": self.value}
    if self.basis is not None:
      out.update(basis=self.basis, shape=self.shape)
    return out

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), sort_keys=True)

  @classmethod
  def of(cls, d: dict) -> "RuleKey":
    """The key of a stored or exported rule (extra fields are ignored)."""
    return cls(d["dimension"], d["direction"], d.get("value"), d.get("basis"), d.get("shape"))


def confidence(support: int, contradict: int) -> float:
  """Laplace's rule of succession, (s + 1) / (s + c + 2): 0.5 with no evidence, towards 1
  with consistent support, towards 0 with consistent contradiction."""
  return (support + 1) / (support + contradict + 2)


def structure_credit(trials: list[dict]) -> dict[int, tuple[float, int]]:
  """Trial number -> (value, number) at which each structural move is judged: its structure's
  best rate variant in the same batch.

  A trial that changes a structural dimension (width, depth, loss, ...) shares its bucket
  with variants of the same structure at other rates; a width is worth what it reaches at
  a good learning rate, not at the one it started with, so an engineer credits the move
  with the best of them. Trials are dicts with number, batch, config, value and proposal;
  rate moves and trials without a batch keep their own value (they are not listed)."""

  def structure(t):
    return t.get("batch"), json.dumps(
        {k: v for k, v in t["config"].items() if k not in DYNAMIC_FIELDS}, sort_keys=True
    )

  best: dict = {}
  for t in trials:
    if t.get("value") is not None and t.get("batch") is not None:
      key = structure(t)
      if key not in best or t["value"] > best[key][0]:
        best[key] = (float(t["value"]), t["number"])
  out = {}
  for t in trials:
    dim = (t.get("proposal") or {}).get("dimension")
    if dim and dim not in DYNAMIC_FIELDS and t.get("batch") is not None:
      key = structure(t)
      if key in best and (t.get("value") is None or best[key][0] > t["value"]):
        out[t["number"]] = best[key]
  return out
