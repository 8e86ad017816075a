"""The typed records planners read and the offline planner builds.

`PlannerContext` is everything a planner may read about a study (built by
search/recall.py from the memory; the Gemini prompt is rendered from it).
Trials inside it stay plain JSON-shaped dicts, as the memory stores them.
`Candidate` is one proposal of the offline planner with its `Reason`s
(codes and facts, phrased by text.py), and `BatchPlan` the state of the
batch being planned: the configurations already reserved.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from vmle_jax.config import DYNAMIC_FIELDS, Schedule
from vmle_jax.search.cost import Price
from vmle_jax.search.policy import text
from vmle_jax.search.space import SearchSpace, SpaceError

DEFAULT_MAX_EPOCHS = Schedule().max_epochs
DEFAULT_PATIENCE = Schedule().patience
DEFAULT_LANES = 8  # the launchers' lanes on one CPU device


@dataclasses.dataclass(frozen=True)
class BudgetState:
  """What is left of a study's budget, and what its trials cost so far."""

  text: str = ""  # the budget in words ("16 trials", "20 minutes, 16 trials")
  trials: int | None = None  # the trial cap
  trials_left: int | None = None  # under a compute budget: what the measured cost says fits
  in_compute: bool = False  # minutes or lane-epochs
  in_minutes: bool = False  # only minutes make a dearer structure cost more
  seconds_left: float | None = None
  seconds_per_lane_epoch: float | None = None
  price: Price | None = None  # the study's measured price, else this machine's probed one
  price_source: str | None = None  # "measured" | "probe" | None
  epochs_per_trial: float | None = None


@dataclasses.dataclass(frozen=True)
class PlannerContext:
  """Everything a planner may read about the study (plain data; no store, no arrays)."""

  space: SearchSpace
  dataset: str = "?"
  stats: Mapping = dataclasses.field(default_factory=dict)
  playbook: Mapping | None = None  # dimension -> priors.Prior (None: derived from stats)
  backbone: str = "sasrec"
  trials: tuple = ()  # the study's finished trials as dicts (recall.trial_view)
  best: dict | None = None
  done: frozenset = frozenset()  # canonical JSON of every configuration run or proposed
  insights: tuple = ()  # insights of this and similar data sets, each with its distance
  summary: dict | None = None  # the backbone's cognition summary
  coverage: Mapping = dataclasses.field(default_factory=dict)  # dimension -> trials moving it
  max_epochs: int = DEFAULT_MAX_EPOCHS
  patience: int = DEFAULT_PATIENCE
  lanes: int = DEFAULT_LANES
  budget: BudgetState = BudgetState()

  def with_done(self, done) -> "PlannerContext":
    return dataclasses.replace(self, done=frozenset(done))


@dataclasses.dataclass(frozen=True)
class Reason:
  """Why a candidate is proposed (or annotated): a code text.py phrases, and its facts."""

  code: str
  facts: dict = dataclasses.field(default_factory=dict)


def reason(code: str, **facts) -> Reason:
  return Reason(code, facts)


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One proposal before it is phrased: full dimension values, what kind of move it is, the
  dimension it tests, the center of the bucket it varies (None: a structure of its own), its
  reasons and its rank score among the structures."""

  values: dict
  kind: str  # playbook | transfer | source | scout | combine | explore | variant
  dimension: str | None
  reasons: tuple[Reason, ...]
  anchor: dict | None = None
  score: float = 0.0

  @property
  def code(self) -> str:
    """The code of the main reason (explore, rate_move, draw, ...)."""
    return self.reasons[0].code

  def annotated(self, r: Reason) -> "Candidate":
    return dataclasses.replace(self, reasons=self.reasons + (r,))

  def proposal(self, base: dict) -> dict:
    """The JSON answer item: the changes from `base`, phrased hypothesis, effect and risk."""
    changes = {k: _plain(v) for k, v in self.values.items() if base.get(k) != v}
    if not changes:  # the base configuration itself (e.g. the playbook agrees with the default)
      first = self.dimension if self.dimension in self.values else next(iter(self.values))
      changes = {first: _plain(self.values[first])}
    out = {
        "changes": changes,
        "dimension": self.dimension,
        "kind": self.kind,
        "hypothesis": text.hypothesis(self.reasons),
        "expected_effect": text.EXPECTED[self.code],
        "risk": text.RISK[self.code],
    }
    if self.anchor is not None:
      out["anchor"] = {k: _plain(v) for k, v in self.anchor.items()}
    return out


def _plain(v):
  """A numpy scalar as a Python one (answers are JSON)."""
  return v.item() if isinstance(v, np.generic) else v


def static_values(space: SearchSpace, values: Mapping) -> dict:
  """The structural (non-rate) dimension values: what makes a bucket's compiled program."""
  return {k: values[k] for k in space.dims if k not in DYNAMIC_FIELDS}


@dataclasses.dataclass
class BatchPlan:
  """The batch being planned: the space, the base every proposal is relative to, and the
  configurations run or reserved so far (a configuration is proposed once)."""

  space: SearchSpace
  base: dict
  taken: set

  def config_of(self, values: Mapping) -> dict | None:
    """Full dimension values if `values` (over the base) are valid, else None."""
    try:
      cfg = self.space.validate({**{k: self.base[k] for k in self.space.dims}, **values})
    except SpaceError:
      return None
    return {k: getattr(cfg, k) for k in self.space.dims}

  def reserve(self, values: Mapping) -> dict | None:
    """The full values of a configuration not run or proposed yet, now reserved for this
    batch; None when invalid or taken."""
    cfg = self.config_of(values)
    if cfg is None:
      return None
    key = self.space.validate({**{k: self.base[k] for k in self.space.dims}, **cfg})
    key = key.canonical_json()
    if key in self.taken:
      return None
    self.taken.add(key)
    return cfg
