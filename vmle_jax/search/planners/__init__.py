"""Planners behind one interface: heuristic (offline default), gemini (LLM), replay.

The heuristic planner and its playbook live in vmle_jax/search/policy/ (planner.py,
priors.py); gemini.py and replay.py are here.
"""

from __future__ import annotations

from vmle_jax.search.planners.replay import ReplayPlanner, Transcript

PLANNERS = ("heuristic", "gemini", "replay")


def make_planner(
    name: str,
    model: str | None = None,
    transcript: str | None = None,
    base_url: str | None = None,
    timeout_s: float = 20.0,
    attempts: int = 2,
):
  """A planner by name (gemini needs an API key in the environment; replay a transcript).
  An LLM call costs at most `timeout_s` x `attempts`."""
  if name == "heuristic":
    from vmle_jax.search.policy.planner import HeuristicPlanner

    return HeuristicPlanner()
  if name == "replay":
    if not transcript:
      raise ValueError("the replay planner needs --transcript=<path of a transcript.jsonl>")
    return ReplayPlanner(transcript)
  if name == "gemini":
    from vmle_jax.search.planners.gemini import DEFAULT_MODEL, GeminiPlanner

    return GeminiPlanner(
        model=model or DEFAULT_MODEL, base_url=base_url, timeout_s=timeout_s, max_attempts=attempts
    )
  raise ValueError(f"planner={name!r}: not one of {', '.join(PLANNERS)}")


__all__ = ["HeuristicPlanner", "PLANNERS", "ReplayPlanner", "Transcript", "make_planner"]


def __getattr__(name: str):
  """HeuristicPlanner on first use: the policy package imports this package's base module,
  so an eager import here would be circular."""
  if name == "HeuristicPlanner":
    from vmle_jax.search.policy.planner import HeuristicPlanner

    return HeuristicPlanner
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
