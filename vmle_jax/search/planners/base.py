"""What every planner gets and gives: a typed context in, JSON-shaped answers out.

A planner never sees a jax array or the database: the agent builds a
`PlannerContext` (search/recall.py: data-set stats, search space, current
best, trials so far as plain dicts, coverage map, insights, cognition
summary, budget) and the planner answers with proposals or reflections in the
JSON shapes below. The agent validates every answer; nothing a planner writes
is executed.

Proposal answer:
  {"proposals": [{"changes": {"dropout": 0.3}, "dimension": "dropout",
                  "hypothesis": "...", "expected_effect": "...", "risk": "..."}]}
Reflection answer:
  {"reflections": [{"trial": 12, "text": "..."}],
   "rules": [{"rule": "...", "dimension": "dropout", "direction": "up",
              "supporting_trials": [12], "contradicting_trials": [9]}]}
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

from vmle_jax.memory.records import DIRECTIONS  # noqa: F401  (the planners' vocabulary)

if TYPE_CHECKING:
  from vmle_jax.search.policy.state import PlannerContext

REFLECTION_SCHEMA = {
    "type": "object",
    "properties": {
        "reflections": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"trial": {"type": "integer"}, "text": {"type": "string"}},
                "required": ["trial", "text"],
            },
        },
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "rule": {"type": "string"},
                    "dimension": {"type": "string"},
                    "direction": {"type": "string", "enum": list(DIRECTIONS)},
                    "value": {},
                    "supporting_trials": {"type": "array", "items": {"type": "integer"}},
                    "contradicting_trials": {"type": "array", "items": {"type": "integer"}},
                },
                "required": [
                    "rule",
                    "dimension",
                    "direction",
                    "supporting_trials",
                    "contradicting_trials",
                ],
            },
        },
    },
    "required": ["reflections", "rules"],
}


@dataclasses.dataclass
class Answer:
  """A planner's raw answer and what it cost."""

  content: Any  # a dict (offline planners) or the model's text (LLM planners)
  prompt_chars: int = 0
  answer_chars: int = 0
  prompt_tokens: int = 0
  answer_tokens: int = 0
  thinking_tokens: int = 0  # a thinking model's reasoning tokens (billed, counted in budgets)
  latency_s: float = 0.0
  model: str | None = None


class Planner(Protocol):
  name: str
  is_llm: bool

  def propose(self, context: "PlannerContext", n: int, feedback: list[str]) -> Answer:
    """Up to n proposals for the next batch; `feedback` lists why earlier answers were rejected."""

  def reflect(self, context: "PlannerContext", batch: list[dict]) -> Answer:
    """Reflections on a finished batch and rules the evidence supports."""

  def describe(self) -> str:
    """One line for the run's output (an offline planner says it is not an LLM)."""
