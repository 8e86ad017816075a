"""The replay planner: plays back a recorded transcript, answer for answer.

Every agent run records each planner answer (proposals and reflections, in
order) to `transcript.jsonl` in its work directory. Replaying that file
re-runs the study exactly, without the original planner (or an API key);
tests use hand-written transcripts to drive the agent through bad answers.
"""

from __future__ import annotations

import json
import os

from vmle_jax.search.planners.base import Answer


class PlannerExhausted(RuntimeError):
  """The transcript has no more answers of the requested kind."""


class Transcript:
  """Appends planner answers to a JSONL file."""

  def __init__(self, path: str):
    self.path = path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

  def record(self, purpose: str, content) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps({"purpose": purpose, "content": content}) + "\n")


class ReplayPlanner:
  """Answers from a transcript, in order, separately for proposals and reflections."""

  name = "replay"
  is_llm = False

  def __init__(self, path: str):
    if not os.path.exists(path):
      raise FileNotFoundError(f"transcript {path}: does not exist")
    self.path = path
    self.queues = {"propose": [], "reflect": []}
    with open(path) as f:
      for lineno, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          entry = json.loads(line)
          if entry["purpose"] in self.queues:  # other records (curve diagnoses) are notes
            self.queues[entry["purpose"]].append(entry["content"])
        except (json.JSONDecodeError, KeyError, TypeError):
          raise ValueError(f"transcript {path} line {lineno}: not a recorded answer") from None

  def describe(self) -> str:
    return f"planner: replay of {self.path} (recorded answers; not an LLM)"

  def _next(self, purpose: str) -> Answer:
    if not self.queues[purpose]:
      raise PlannerExhausted(f"transcript {self.path} has no more {purpose} answers")
    content = self.queues[purpose].pop(0)
    text = content if isinstance(content, str) else json.dumps(content)
    return Answer(content=content, answer_chars=len(text))

  def propose(self, context, n, feedback):
    return self._next("propose")

  def reflect(self, context, batch):
    return self._next("reflect")
