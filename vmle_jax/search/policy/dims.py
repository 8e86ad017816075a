"""The rate dimensions the planner moves inside a bucket, one table row each.

A rate is a dynamic value (config.DYNAMIC_FIELDS): lanes that differ only in
rates share one compiled program, so every bucket's lanes are variants of its
center's rates. Each `RateDim` row says how far a move goes at each
refinement level (a factor for rates on a log scale, an amount for the rest),
why an engineer would move it up or down, whether the seeded draws around a
center move it, and how it relates to the others: `follows` (attention
dropout moves with dropout while the two are equal, and stands alone when
dropout is not searched) and `requires` (the temperature matters only with
L2-normalised scores). The table's order is the order in which moves of
equal standing are tried. Every place that moves a rate reads this table, so
a new rate dimension is one row here plus its model code.
"""

from __future__ import annotations

import dataclasses

from vmle_jax.search.space import Float, Int, SearchSpace


@dataclasses.dataclass(frozen=True)
class RateDim:
  """One rate the planner moves; see the module docstring."""

  name: str
  steps: tuple[float, ...]  # the move at each refinement level (coarse to fine)
  scale: str  # "mul": x / steps (log scale); "add": +/- steps
  why_up: str
  why_down: str
  drawn: bool = True  # moved by the seeded draws around a center
  follows: str | None = None
  requires: str | None = None  # a boolean switch that must be on

  def moved(self, value: float, direction: str, level: int) -> float:
    """One move of `value` up or down at refinement `level`."""
    step = self.steps[level]
    if self.scale == "mul":
      return value * step if direction == "up" else value / step
    return value + step if direction == "up" else value - step

  def drawn_from(self, value: float, level: int, u: float) -> float:
    """A draw around `value` at refinement `level`, `u` a uniform draw in the span."""
    step = self.steps[level]
    return value * step**u if self.scale == "mul" else value + step * u

  def why(self, direction: str) -> str:
    return self.why_up if direction == "up" else self.why_down


RATE_DIMS: tuple[RateDim, ...] = (
    RateDim(
        "lr",
        (2.0, 1.5, 1.25),
        "mul",
        "a larger step climbs further within the epoch cap",
        "a smaller step settles into a better optimum and overfits later",
    ),
    RateDim(
        "dropout",
        (0.15, 0.1, 0.05),
        "add",
        "more dropout regularises; sparse data overfits quickly",
        "less dropout lets the model fit more signal in few epochs",
    ),
    RateDim(
        "weight_decay",
        (0.1, 0.05, 0.02),
        "add",
        "decay shrinks rarely seen item embeddings",
        "less decay keeps more of what was learned",
    ),
    RateDim(
        "temperature",
        (2.0, 1.5, 1.25),
        "mul",
        "a softer softmax over normalised scores",
        "a sharper softmax separates the positive more",
        drawn=False,
        requires="l2_norm",
    ),
    RateDim(
        "attn_dropout",
        (0.15, 0.1, 0.05),
        "add",
        "attention dropout regularises the mixing of past items",
        "cleaner attention over the recent items",
        follows="dropout",
    ),
)
RATES = {r.name: r for r in RATE_DIMS}
# Refinement levels: a bucket's moves shrink as the study learns (every row has this many).
LEVELS = len(RATE_DIMS[0].steps)
assert all(len(r.steps) == LEVELS for r in RATE_DIMS), "every rate needs a step per level"


def clip(space: SearchSpace, dim: str, value):
  """`value` within the dimension's bounds (categorical values are returned as they are)."""
  d = space.dims.get(dim)
  if isinstance(d, (Float, Int)):
    return min(max(value, d.low), d.high)
  return value


def movable(space: SearchSpace, values: dict) -> list[RateDim]:
  """The rates a bucket of `values` moves one at a time, in table order: searched, their
  switch on, and not following a searched leader (a follower moves with its leader)."""
  return [
      r
      for r in RATE_DIMS
      if r.name in space.dims
      and (r.requires is None or values.get(r.requires, False))
      and not (r.follows and r.follows in space.dims)
  ]


def drawn(space: SearchSpace) -> list[RateDim]:
  """The rates the seeded draws move, in table order (a follower only without its leader)."""
  return [
      r
      for r in RATE_DIMS
      if r.name in space.dims and r.drawn and not (r.follows and r.follows in space.dims)
  ]


def followers_of(space: SearchSpace, leader: str, before: dict) -> list[RateDim]:
  """The searched rates that move with `leader` from `before` (they were equal)."""
  return [
      r
      for r in RATE_DIMS
      if r.follows == leader and r.name in space.dims and before.get(r.name) == before.get(leader)
  ]


def rides_along(dim: str, values: dict, changed: list[str]) -> bool:
  """Whether a change of `dim` is part of its leader's move (not a move of its own)."""
  r = RATES.get(dim)
  return bool(r and r.follows and r.follows in changed and values.get(dim) == values.get(r.follows))
