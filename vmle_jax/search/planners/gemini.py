"""The Gemini planner: google-genai with structured JSON output, retries and token accounting.

The API key comes from GEMINI_API_KEY or GOOGLE_API_KEY and is handed to the
client only: it is never stored on this object, logged, or written anywhere.
Prompts are versioned files in vmle_jax/search/prompts/. Requests that fail
with 429, a 5xx or a timeout are retried with exponential backoff, within a
budget of timeout x attempts per call (by default 20 s x 2: a server that
accepts and never answers costs at most 40 s); what still fails raises, and
the agent falls back to the heuristic planner.
"""

from __future__ import annotations

import json
import os
import string
import time

from vmle_jax.config import DYNAMIC_FIELDS
from vmle_jax.memory.summaries import NEAR, is_near
from vmle_jax.search.planners.base import REFLECTION_SCHEMA, Answer
from vmle_jax.search.policy import dims
from vmle_jax.search.policy.priors import DataProfile
from vmle_jax.search.policy.priors import table as playbook_table
from vmle_jax.search.policy.state import PlannerContext
from vmle_jax.search.space import Choice, Float, Int

DEFAULT_MODEL = "gemini-3.5-flash"
# Each purpose's prompt file (vmle_jax/search/prompts/<purpose>.<version>.md).
PROMPT_VERSIONS = {"propose": "v3", "reflect": "v2"}
PROMPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "prompts")
RETRY_STATUS = (408, 429, 500, 502, 503, 504)


class PlannerError(RuntimeError):
  pass


def load_prompt(purpose: str, version: str | None = None) -> string.Template:
  version = version or PROMPT_VERSIONS[purpose]
  with open(os.path.join(PROMPTS, f"{purpose}.{version}.md")) as f:
    return string.Template(f.read())


def _value_schema(dim) -> dict:
  """A dimension's JSON schema: its type, its allowed values or its bounds."""
  if isinstance(dim, Choice):
    sample = dim.values[0]
    kind = (
        "boolean"
        if isinstance(sample, bool)
        else "integer"
        if isinstance(sample, int)
        else "number"
        if isinstance(sample, float)
        else "string"
    )
    out = {"type": kind}
    if kind != "boolean":
      out["enum"] = list(dim.values)
    return out
  if isinstance(dim, Int):
    return {"type": "integer", "minimum": dim.low, "maximum": dim.high}
  if isinstance(dim, Float):
    return {"type": "number", "minimum": dim.low, "maximum": dim.high}
  return {}


def proposal_schema(space) -> dict:
  """The JSON schema of a proposal answer: every parameter typed, bounded or enumerated."""
  props = {name: _value_schema(dim) for name, dim in space.dims.items()}
  item = {
      "type": "object",
      "properties": {
          "changes": {"type": "object", "properties": props},
          "dimension": {"type": "string", "enum": list(space.dims)},
          "hypothesis": {"type": "string"},
          "expected_effect": {"type": "string"},
          "risk": {"type": "string"},
      },
      "required": ["changes", "dimension", "hypothesis", "expected_effect", "risk"],
  }
  return {
      "type": "object",
      "properties": {"proposals": {"type": "array", "items": item}},
      "required": ["proposals"],
  }


def reflection_schema(space) -> dict:
  """The reflection answer's schema; a rule's value keeps the parameter's type."""
  schema = json.loads(json.dumps(REFLECTION_SCHEMA))
  rule = schema["properties"]["rules"]["items"]["properties"]
  rule["dimension"] = {"type": "string", "enum": list(space.dims)}
  rule["value"] = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
  return schema


def _curve_text(t: dict) -> str:
  values = [p["NDCG@10"] for p in t.get("curve") or [] if "NDCG@10" in p]
  shape = (t.get("diagnosis") or {}).get("label")
  if not values:
    return shape or "-"
  pts = values if len(values) <= 6 else values[:2] + values[-4:]
  return f"{' '.join(f'{v:.3f}' for v in pts)}" + (f" ({shape})" if shape else "")


def _distance_note(rule: dict) -> str:
  """How far the data a lesson was learned on lies from this data set's statistics."""
  d = rule.get("distance")
  if d is None:
    return ""
  if is_near(d):
    return f", learned on similar data: distance {d:.1f}"
  return f", learned on data unlike this one: distance {d:.1f} > {NEAR}, treat as a guess"


def _trial_table(trials: list[dict], detail: bool = False) -> str:
  if not trials:
    return "(none yet)"
  head = "| # | change | val NDCG@10 | parent (score) | epochs | status | curve |"
  if detail:
    head += " hypothesis |"
  else:
    head += " reflection |"
  lines = [head, "|" + "---|" * (head.count("|") - 1)]
  for t in trials:
    p = t.get("proposal") or {}
    change = (
        "-"
        if not p.get("changed")
        else ", ".join(f"{d}={t['config'].get(d)!r}" for d in p["changed"])
    )
    v = "-" if t["value"] is None else f"{t['value']:.4f}"
    parent = (
        "-"
        if p.get("parent_number") is None
        else f"#{p['parent_number']} ({p['parent_value']:.4f})"
        if p.get("parent_value") is not None
        else f"#{p['parent_number']}"
    )
    last = (p.get("hypothesis") or "")[:200] if detail else (t.get("reflection") or "")[:200]
    lines.append(
        f"| {t['number']} | {change} | {v} | {parent} | {t['epochs']} | "
        f"{t['status']} | {_curve_text(t)} | {last.replace('|', '/')} |"
    )
  return "\n".join(lines)


def _budget_text(context: PlannerContext, n: int) -> str:
  """The budget as the model should weigh it: trials left, and under a compute budget the
  measured cost (a dearer model spends minutes the search could use elsewhere)."""
  budget = context.budget
  if budget.trials_left is None:
    return ""
  text = (
      f"{budget.trials_left} of {budget.trials} trials are left in the budget; "
      f"each batch trains up to {context.lanes or n} lanes at once."
  )
  if budget.in_compute:
    per = budget.seconds_per_lane_epoch
    text += (
        f" The budget is compute ({budget.text}): the trials left are what the "
        "study's measured cost says still fits"
        + (f" ({per:.1f} s per lane-epoch so far)" if per else "")
        + "."
    )
  if budget.in_minutes:
    left_s, price = budget.seconds_left, budget.price
    text += (
        (f" {left_s / 60:.1f} min are left." if left_s is not None else "")
        + (
            (
                " Probed on this machine (no trial of this study has trained yet)"
                if budget.price_source == "probe"
                else " Measured here"
            )
            + f": a lane-epoch costs {price.seconds_per_lane_epoch:.2f} s plus "
            f"{price.seconds_per_tflop:.2f} s per TFLOP of its work."
            if price
            else (
                " No trial has a measured price yet: this batch also measures it."
                if context.trials
                else " No trial has trained yet: the first batch also measures the price."
            )
        )
        + " Cost grows with hidden width, window (max_len), blocks and the full softmax over "
        "the catalogue; propose a dearer structure only where the evidence says it pays, and "
        "no batch that cannot finish in the minutes left."
    )
  return text


def rate_table(space) -> str:
  """The rate dimensions a bucket's lanes vary (policy/dims.py), one line each."""
  lines = []
  for r in dims.RATE_DIMS:
    if r.name not in space.dims:
      continue
    sign = "x" if r.scale == "mul" else "+/-"
    steps = " / ".join(f"{sign}{s:g}" for s in r.steps)
    extra = (f"; moves with {r.follows} while equal to it" if r.follows else "") + (
        f"; only with {r.requires} on" if r.requires else ""
    )
    lines.append(f"- {r.name}: {steps}; up: {r.why_up}; down: {r.why_down}{extra}")
  return "\n".join(lines) or "(none searched)"


def render(purpose: str, context: PlannerContext, n: int = 0, feedback=(), batch=()) -> str:
  """Fills a prompt template from the planner's context (plain data only)."""
  space, best = context.space, context.best
  profile = DataProfile.from_stats(context.stats)
  fields = {
      "backbone": context.backbone,
      "dataset": f"{context.dataset}: {profile.facts()}",
      "playbook": playbook_table(context.playbook) if context.playbook else "(none)",
      "max_epochs": str(context.max_epochs),
      "patience": str(context.patience),
      "budget": _budget_text(context, n),
      "space": "\n".join(f"- {k}: {v}" for k, v in space.describe().items()),
      "dynamic": ", ".join(d for d in space.dims if d in DYNAMIC_FIELDS) or "none",
      "rates": rate_table(space),
      "best": (
          "(no trial yet)"
          if not best
          else f"trial {best['number']}, validation NDCG@10 {best['value']:.4f}: "
          + json.dumps({k: best["config"][k] for k in space.dims})
      ),
      "trials": _trial_table(list(context.trials)),
      "insights": "\n".join(
          f"- {i['rule']} (data set {i['dataset']}, support {len(i['support'])}, "
          f"contradict {len(i['contradict'])}, confidence {i['confidence']:.2f}"
          f"{_distance_note(i)})"
          for i in context.insights
      )
      or "(none)",
      "summary": "\n".join(
          f"{j}. {r['rule']} (confidence {r['confidence']:.2f}{_distance_note(r)})"
          for j, r in enumerate((context.summary or {}).get("rules", []), 1)
      )
      or "(none)",
      "n": str(n),
      "feedback": (
          "\nYour previous answer was rejected:\n"
          + "\n".join(f"- {f}" for f in feedback)
          + "\nFix these problems.\n"
      )
      if feedback
      else "",
      "batch": _trial_table(list(batch), detail=True),
  }
  return load_prompt(purpose).safe_substitute(fields)


class GeminiPlanner:
  """Proposals and reflections from a Gemini model (see the module docstring)."""

  name = "gemini"
  is_llm = True

  def __init__(
      self,
      model: str = DEFAULT_MODEL,
      base_url: str | None = None,
      timeout_s: float = 20.0,
      max_attempts: int = 2,
      backoff_s: float = 2.0,
      temperature: float = 0.2,
  ):
    key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if not key:
      raise PlannerError(
          "the gemini planner needs an API key in GEMINI_API_KEY or "
          "GOOGLE_API_KEY; or use --planner=heuristic (offline)"
      )
    try:
      from google import genai
      from google.genai import types
    except ImportError:
      raise PlannerError(
          "the gemini planner needs google-genai: pip install " "'vmle-jax[gemini]'"
      ) from None
    self.types = types
    self.model = model
    self.timeout_s = float(timeout_s)
    self.max_attempts = max(1, int(max_attempts))
    self.backoff_s = backoff_s
    self.temperature = temperature
    options = types.HttpOptions(
        base_url=base_url,
        timeout=int(timeout_s * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    self._client = genai.Client(api_key=key, http_options=options)

  def describe(self) -> str:
    versions = ", ".join(f"{p} {v}" for p, v in PROMPT_VERSIONS.items())
    return f"planner: gemini ({self.model}, prompts {versions}; an LLM)"

  def _generate(self, prompt: str, schema: dict) -> Answer:
    from google.genai import errors

    config = self.types.GenerateContentConfig(
        response_mime_type="application/json",
        response_json_schema=schema,
        temperature=self.temperature,
    )
    last = None
    # A call never costs more than timeout x attempts: backoff sleeps fit in that budget.
    deadline = time.perf_counter() + self.timeout_s * self.max_attempts
    for attempt in range(self.max_attempts):
      t0 = time.perf_counter()
      try:
        resp = self._client.models.generate_content(
            model=self.model, contents=prompt, config=config
        )
      except errors.APIError as e:
        last = e
        if getattr(e, "code", None) not in RETRY_STATUS:
          raise PlannerError(
              f"gemini request failed: {getattr(e, 'code', '?')} " f"{getattr(e, 'status', '')}"
          ) from None
      except Exception as e:  # timeouts and connection errors of the HTTP layer: transient
        last = e
      else:
        usage = resp.usage_metadata
        text = resp.text or ""
        return Answer(
            content=text,
            prompt_chars=len(prompt),
            answer_chars=len(text),
            prompt_tokens=int(getattr(usage, "prompt_token_count", 0) or 0),
            answer_tokens=int(getattr(usage, "candidates_token_count", 0) or 0),
            thinking_tokens=int(getattr(usage, "thoughts_token_count", 0) or 0),
            latency_s=time.perf_counter() - t0,
            model=self.model,
        )
      if attempt + 1 < self.max_attempts:
        room = deadline - time.perf_counter() - self.timeout_s
        time.sleep(max(0.0, min(self.backoff_s * 2**attempt, room)))
    raise PlannerError(
        f"gemini request failed after {self.max_attempts} attempts: " f"{type(last).__name__}"
    )

  def propose(self, context: PlannerContext, n: int, feedback: list[str]) -> Answer:
    return self._generate(render("propose", context, n, feedback), proposal_schema(context.space))

  def reflect(self, context: PlannerContext, batch: list[dict]) -> Answer:
    return self._generate(render("reflect", context, batch=batch), reflection_schema(context.space))
