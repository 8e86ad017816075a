"""What a baseline study's trials say about each move: where its best trials sit.

A random or TPE study changes many dimensions at once, so no single trial
tests one move the way an agent's trial does. Its trials still say something
an engineer would read off a scatter plot: if the best quarter of a study's
trials sits above the playbook's start of a dimension more often than the
rest of its trials do, the study supports raising that dimension from the
start (and contradicts lowering it); for a categorical dimension, the value
the best quarter holds more often than the rest is the one it supports.

Only rate dimensions are read this way (`DYNAMIC_FIELDS`: lr, dropout, weight
decay, ...). A structure is worth what it reaches at a good rate, and a
baseline draws its width and its rate independently, so its marginal of a
structural dimension mixes the two: against the agent's tested moves on the
same data (each structure judged at its best rate), marginals agreed on 30 of
36 (study, rate) pairs but on 7 of 15 (study, structure) pairs, hidden 5 of
12 (`python bench/marginals.py`, the committed experiment memories).

One study is one test of a move here (an agent's trial that changed that move
alone is one test in its insights); the effect is the relative change of the
median validation NDCG@10 of the trials on the supported side over the
median of the others, and a lean whose side does no better at the median is
no finding. TPE samples near its own best, so its trials are
correlated: a marginal is evidence, not a controlled test, and the summary
says which of its rules rest on marginals alone (`basis`).
"""

from __future__ import annotations

from typing import Collection

import numpy as np

from vmle_jax.config import DYNAMIC_FIELDS
from vmle_jax.memory.records import RuleKey, Trial

# Fewer finished trials do not split into a best quarter and a rest worth comparing.
MIN_TRIALS = 8
# The best quarter, as TPE's own split of good and bad trials (gamma 0.25, at least 2).
TOP_SHARE = 0.25
# The best quarter's mean side of the start (-1 below, 0 at, +1 above) must differ from the
# rest's by this much, so half the best quarter at least has moved off where the rest sit.
MIN_LEAN = 0.5


def _numeric(values: list) -> bool:
  return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _side(value, start) -> int:
  if np.isclose(value, start, rtol=1e-6, atol=0.0):
    return 0
  return 1 if value > start else -1


def _median_gain(inside: list[float], outside: list[float]) -> float | None:
  if not inside or not outside or np.median(outside) <= 0:
    return None
  return float(np.median(inside) / np.median(outside) - 1.0)


# The dimensions a summary reads marginals of (see the module docstring).
READ = tuple(DYNAMIC_FIELDS)


def study_marginals(
    trials: list[Trial], start: dict | None = None, dimensions: Collection[str] | None = READ
) -> list[dict]:
  """One finding per dimension the study varied and whose best quarter leans to a side:
  {"key": RuleKey of the supported move, "opposite": the key it contradicts or None,
  "gain": relative effect or None, "trials": n}. `start` is the playbook's start on this
  data (a dimension without one is read against the study's own median value);
  `dimensions` None reads every dimension (bench/marginals.py measures them all)."""
  scored = sorted((t for t in trials if t.value is not None), key=lambda t: (-t.value, t.number))
  if len(scored) < MIN_TRIALS:
    return []
  k = max(2, int(round(len(scored) * TOP_SHARE)))
  top, rest = scored[:k], scored[k:]
  out = []
  dims = sorted(set().union(*(t.config.keys() for t in scored)))
  if dimensions is not None:
    dims = [d for d in dims if d in dimensions]
  for dim in dims:
    values = [t.config.get(dim) for t in scored]
    if any(v is None for v in values) or len({repr(v) for v in values}) < 2:
      continue  # not searched in this study
    ref = (start or {}).get(dim)
    if _numeric(values):
      ref = float(np.median(values)) if ref is None or not _numeric([ref]) else ref
      finding = _numeric_finding(dim, top, rest, ref)
    else:
      finding = _categorical_finding(dim, top, rest, ref)
    if finding is not None and (finding["gain"] is None or finding["gain"] > 0):
      out.append({**finding, "trials": len(scored)})
  return out


def _numeric_finding(dim: str, top: list[Trial], rest: list[Trial], ref) -> dict | None:
  lean = np.mean([_side(t.config[dim], ref) for t in top]) - np.mean(
      [_side(t.config[dim], ref) for t in rest]
  )
  if abs(lean) < MIN_LEAN:
    return None
  up = lean > 0
  on_side = [t.value for t in top + rest if _side(t.config[dim], ref) == (1 if up else -1)]
  others = [t.value for t in top + rest if _side(t.config[dim], ref) != (1 if up else -1)]
  return {
      "key": RuleKey(dim, "up" if up else "down"),
      "opposite": RuleKey(dim, "down" if up else "up"),
      "gain": _median_gain(on_side, others),
      "lean": round(float(lean), 3),
  }


def _categorical_finding(dim: str, top: list[Trial], rest: list[Trial], ref) -> dict | None:
  def share(group, v):
    return sum(repr(t.config[dim]) == repr(v) for t in group) / len(group)

  values = {repr(t.config[dim]): t.config[dim] for t in top + rest}
  lean, value = max((share(top, v) - share(rest, v), v) for v in sorted(values.values(), key=repr))
  if lean < MIN_LEAN or repr(value) == repr(ref):
    return None
  inside = [t.value for t in top + rest if repr(t.config[dim]) == repr(value)]
  others = [t.value for t in top + rest if repr(t.config[dim]) != repr(value)]
  return {
      "key": RuleKey(dim, "set", value),
      "opposite": None,
      "gain": _median_gain(inside, others),
      "lean": round(float(lean), 3),
  }
