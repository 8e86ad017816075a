"""The playbook: what an experienced engineer concludes from a data set's statistics.

`playbook(stats, space, ...)` turns the statistics of the data in front of
the agent (users, items, interactions, length percentiles, density, repeat
rate, timestamps) and the backbone's search space into one `Prior` per
searchable dimension: a starting value, the alternatives worth trying next
in order, how sure the rule is, and a one-line rationale. Every rule reads
statistics only, never a data set's name, so it applies to data the code
has never seen. The heuristic planner starts from it, the Gemini prompt
shows it as facts and suggested starting points, and cognition summaries
record each rule's move relative to it (README: "The playbook").

Confidence is the planner's prior that the starting value is already right
(0..1); the planner explores the least certain dimensions first.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from vmle_jax.config import DYNAMIC_FIELDS
from vmle_jax.search.space import Choice, Float, Int, SearchSpace, SpaceError

# Bytes of full-softmax logits (forward, gradient, softmax) a lane may use:
# above this the playbook prefers the sampled softmax.
DEFAULT_LOGITS_BUDGET = 2 * 1024**3
# Optimizer steps at which a learning rate of 1e-3 at width 64 is a good default;
# fewer steps in the epoch cap call for a proportionally larger step (sqrt rule).
REFERENCE_STEPS = 3000


@dataclasses.dataclass(frozen=True)
class Prior:
  """The playbook's view of one dimension."""

  dimension: str
  value: Any  # where to start
  alternatives: tuple  # what to try next, most promising first
  confidence: float  # prior that `value` is already right (0..1)
  rationale: str  # one line: which statistic says so, and why

  def as_dict(self) -> dict:
    return {
        "dimension": self.dimension,
        "value": self.value,
        "alternatives": list(self.alternatives),
        "confidence": self.confidence,
        "rationale": self.rationale,
    }


@dataclasses.dataclass(frozen=True)
class DataProfile:
  """The statistics the rules read (from `SequenceDataset.stats()` or the memory)."""

  users: int
  items: int
  interactions: int
  p50: float
  p90: float
  longest: float
  density: float
  repeat_rate: float
  has_timestamps: bool

  @classmethod
  def from_stats(cls, stats: dict) -> "DataProfile":
    q = stats.get("len_quantiles") or {}
    avg = float(stats.get("avg_len") or 10.0)
    users = int(stats.get("users") or 1)
    items = int(stats.get("items") or 1)
    return cls(
        users=users,
        items=items,
        interactions=int(stats.get("interactions") or users * avg),
        p50=float(q.get("p50", avg)),
        p90=float(q.get("p90", 2 * avg)),
        longest=float(q.get("max", 4 * avg)),
        density=float(stats.get("density") or 1.0 / max(1, items)),
        repeat_rate=float(stats.get("repeat_rate") or 0.0),
        has_timestamps=bool(stats.get("has_timestamps")),
    )

  def facts(self) -> str:
    return (
        f"{self.users:,} users, {self.items:,} items, {self.interactions:,} interactions; "
        f"sequence length p50 {self.p50:g}, p90 {self.p90:g}, max {self.longest:g}; "
        f"density {self.density:.2e}; repeat rate {self.repeat_rate:.1%}; "
        f"timestamps {'yes' if self.has_timestamps else 'no'}"
    )


def dimension_choices(space: SearchSpace, dim: str) -> list:
  """The values a categorical dimension of `space` allows ([] for other dimensions)."""
  d = space.dims.get(dim)
  return list(d.values) if isinstance(d, Choice) else []


def _nearest(values: list, target: float) -> Any:
  return min(values, key=lambda v: (abs(math.log(v) - math.log(target)), v))


def _by_distance(values: list, start, numeric: bool = True) -> tuple:
  """The other values, nearest to `start` first (ties: the larger first)."""
  others = [v for v in values if v != start]
  if not numeric:
    return tuple(others)
  return tuple(sorted(others, key=lambda v: (abs(math.log(v) - math.log(start)), -v)))


def _clip(space: SearchSpace, dim: str, value: float) -> float:
  d = space.dims.get(dim)
  if isinstance(d, (Float, Int)):
    value = min(max(value, d.low), d.high)
  return float(f"{value:.3g}")


def steps_per_epoch(profile: DataProfile, batch_size: int) -> int:
  return max(1, math.ceil(profile.users / batch_size))


def playbook(
    stats: dict,
    space: SearchSpace,
    max_epochs: int = 200,
    logits_budget: int = DEFAULT_LOGITS_BUDGET,
) -> dict[str, Prior]:
  """One Prior per searchable dimension of `space` (see the module docstring)."""
  p = DataProfile.from_stats(stats)
  backbone = space.backbone
  out: dict[str, Prior] = {}

  def put(dim, value, alternatives, confidence, rationale):
    if dim in space.dims:
      alts = []
      for a in alternatives:
        if a != value and a not in alts:
          alts.append(a)
      out[dim] = Prior(dim, value, tuple(alts), round(confidence, 2), rationale)

  # Window: the most recent items a user's query sees.
  lens = dimension_choices(space, "max_len") or [space.base.max_len]
  fits = [v for v in sorted(lens) if v >= p.p90]
  window = fits[0] if fits else max(lens)
  put(
      "max_len",
      window,
      _by_distance(lens, window),
      0.7,
      f"covers the full history of 90% of users (p90 length {p.p90:g}); longer only pads, "
      "shorter cuts the histories the model learns from",
  )

  # Batch: enough optimizer steps per epoch.
  batches = sorted(dimension_choices(space, "batch_size") or [space.base.batch_size])
  enough = [b for b in batches if p.users / b >= 100]
  batch = max(enough) if enough else min(batches)
  batch = min(batch, 256)
  put(
      "batch_size",
      batch,
      _by_distance(batches, batch),
      0.6,
      f"{p.users:,} users: batch {batch} gives {steps_per_epoch(p, batch)} steps per epoch "
      "(at least 100 where the data allows; small data needs more, smaller steps)",
  )

  # Loss: full softmax where its logits fit, else a sampled softmax with many negatives.
  tokens = batch * window
  logits = tokens * (p.items + 1) * 3 * 4
  losses = dimension_choices(space, "loss")
  if losses:
    if logits <= logits_budget and "softmax" in losses:
      loss = "softmax"
      why = (
          f"full softmax over {p.items:,} items fits ({logits / 2 ** 20:,.0f} MiB of logits "
          "per lane): the exact objective, which converges fastest and ranks best"
      )
    else:
      loss = "sampled_softmax" if "sampled_softmax" in losses else losses[0]
      why = (
          f"full-softmax logits over {p.items:,} items would take {logits / 2 ** 30:,.1f} GiB "
          "per lane: sampled softmax with many shared negatives approximates it"
      )
    order = [x for x in ("softmax", "sampled_softmax", "bce") if x in losses and x != loss]
    put("loss", loss, order, 0.8, why)
  negatives = dimension_choices(space, "num_negatives")
  if negatives:
    want = min(max(negatives), max(64, p.items / 16))
    neg = _nearest([n for n in negatives if n >= 16] or negatives, want)
    put(
        "num_negatives",
        neg,
        _by_distance(negatives, neg),
        0.5,
        f"shared negatives ~ 1/16 of the {p.items:,}-item catalogue for the sampled loss "
        "(more negatives: closer to the full softmax, slower steps)",
    )

  # Width: capacity grows with the evidence per item.
  per_item = p.interactions / max(1, p.items)
  widths = dimension_choices(space, "hidden")
  if widths:
    hidden = 128 if p.interactions >= 50_000 else 64
    hidden = _nearest(widths, hidden)
    put(
        "hidden",
        hidden,
        _by_distance(widths, hidden),
        0.45,
        f"{p.interactions:,} interactions ({per_item:.0f} per item): "
        + (
            "enough evidence for a wider model, regularised by dropout"
            if hidden >= 128
            else "little evidence: a narrow model overfits less"
        ),
    )
  hidden = out["hidden"].value if "hidden" in out else space.base.hidden

  # Optimizer steps the epoch cap allows: few steps favour what climbs fast.
  total_steps = max_epochs * steps_per_epoch(p, batch)
  short = total_steps < REFERENCE_STEPS / 2

  # Depth: long sequences compose longer-range patterns; short ones rarely need depth.
  # A deeper stack climbs slower, so with few steps in the cap depth is added last.
  if isinstance(space.dims.get("blocks"), Int):
    d = space.dims["blocks"]
    blocks = min(max(2 if p.p50 >= 12 or backbone == "hstu" else 1, d.low), d.high)
    order = (blocks - 1, blocks + 1, blocks + 2) if short else (blocks + 1, blocks - 1, blocks + 2)
    alts = [b for b in order if d.low <= b <= d.high]
    put(
        "blocks",
        blocks,
        alts,
        0.7 if short else 0.55,
        f"median length {p.p50:g}: "
        + (
            "long enough for two attention layers to compose " "patterns"
            if blocks >= 2
            else "short sequences: one block fits as well and overfits " "less"
        )
        + (
            f"; only {total_steps:,} steps in the epoch cap: a deeper stack climbs slower"
            if short
            else ""
        ),
    )
  heads = dimension_choices(space, "heads")
  if heads:
    h = max([x for x in heads if hidden % x == 0 and hidden // x >= 32] or [min(heads)])
    if backbone == "hstu":
      h = 2 if 2 in heads and hidden % 2 == 0 else h
    put(
        "heads",
        h,
        _by_distance(heads, h),
        0.6,
        f"heads of at least 32 dimensions at width {hidden}",
    )

  # Output table: a tied table favours the items just seen, which only pays when users repeat.
  if "tie_embeddings" in space.dims:
    tie = p.repeat_rate >= 0.2
    put(
        "tie_embeddings",
        tie,
        [not tie],
        0.75,
        f"repeat rate {p.repeat_rate:.0%}: "
        + (
            "users re-consume, so scoring with the input table (which favours seen items) helps"
            if tie
            else "users rarely re-consume, and a tied table scores the items just seen "
            "high: a separate output table"
        ),
    )

  # Regularisation from density: sparse data overfits within a few epochs.
  sparsity = math.log10(max(0.05 / max(p.density, 1e-9), 1.0))
  # Few updates (`short`): regularisation slows the climb.
  dropout = 0.2 + 0.15 * sparsity + (0.05 if hidden >= 256 else 0.0) - (0.1 if short else 0.0)
  dropout = _clip(space, "dropout", round(min(max(dropout, 0.1), 0.5) * 20) / 20)
  put(
      "dropout",
      dropout,
      [_clip(space, "dropout", dropout + 0.15), _clip(space, "dropout", dropout - 0.1)],
      0.5,
      f"density {p.density:.1e}: "
      + (
          "sparse data overfits quickly; strong dropout"
          if dropout >= 0.35
          else "dense data: moderate dropout"
      )
      + (f", less with only {total_steps:,} steps in the epoch cap" if short else ""),
  )
  if "attn_dropout" in space.dims:
    attn = dropout if backbone == "sasrec" else 0.0
    attn = _clip(space, "attn_dropout", attn)
    put(
        "attn_dropout",
        attn,
        [_clip(space, "attn_dropout", attn + 0.15)],
        0.5,
        "the same rate as the residual dropout (SASRec's single rate)"
        if backbone == "sasrec"
        else "HSTU's reference uses no attention dropout",
    )
  if "weight_decay" in space.dims:
    put(
        "weight_decay",
        0.0,
        [0.1],
        0.6,
        "dropout carries the regularisation; decoupled decay is a second-order knob",
    )

  # Learning rate: scaled to width and to the optimizer steps the epoch cap allows.
  boost = min(max(math.sqrt(REFERENCE_STEPS / total_steps), 1.0), 3.0)
  lr = _clip(space, "lr", 1e-3 * math.sqrt(64 / hidden) * boost)
  put(
      "lr",
      lr,
      [_clip(space, "lr", lr * 2), _clip(space, "lr", lr / 2)],
      0.45,
      f"1e-3 at width 64, x sqrt(64/{hidden}) for width {hidden}"
      + (
          f", x{boost:.1f} because the cap of {max_epochs} epochs allows only "
          f"{total_steps:,} steps"
          if boost > 1.0
          else ""
      ),
  )

  if "beta2" in space.dims:
    b2 = dimension_choices(space, "beta2")
    put(
        "beta2",
        0.98 if 0.98 in b2 else b2[0],
        [v for v in b2 if v != 0.98],
        0.7,
        "a shorter second-moment horizon adapts faster to rare items (original SASRec: 0.98)",
    )
  if "norm" in space.dims:
    put("norm", "pre", ["post"], 0.75, "pre-LN trains stably at higher learning rates")
  if "ffn" in space.dims:
    put("ffn", "gelu", ["swiglu"], 0.7, "the standard activation; SwiGLU adds parameters")
  if "ffn_mult" in space.dims:
    mults = dimension_choices(space, "ffn_mult")
    put(
        "ffn_mult",
        1,
        [m for m in sorted(mults) if m != 1],
        0.65,
        "original SASRec's feed-forward size; wider mostly adds overfitting on sparse data",
    )
  if "positions" in space.dims:
    pos = "relative" if backbone == "hstu" else "learned"
    put(
        "positions",
        pos,
        [x for x in dimension_choices(space, "positions") if x != pos],
        0.7,
        "the backbone's reference positional scheme",
    )
  if "l2_norm" in space.dims:
    l2 = backbone == "hstu"
    put(
        "l2_norm",
        l2,
        [not l2],
        0.65,
        "HSTU's normalised embeddings with a temperature"
        if l2
        else "raw dot products; normalised scores then need a temperature",
    )
  if "temperature" in space.dims:
    temp = 0.05 if backbone == "hstu" else 1.0
    put(
        "temperature",
        _clip(space, "temperature", temp),
        [_clip(space, "temperature", temp * 2), _clip(space, "temperature", temp / 2)],
        0.55,
        "with normalised scores a low temperature separates the positive"
        if backbone == "hstu"
        else "no rescaling of raw scores",
    )
  for dim in ("linear_dim", "attention_dim"):
    if dim in space.dims:
      vals = dimension_choices(space, dim)
      v = _nearest(vals, max(16, hidden // 2 if dim == "linear_dim" else hidden // 4))
      put(dim, v, _by_distance(vals, v), 0.6, f"scaled to width {hidden}")
  # Anything else: the space's default, with low confidence.
  for dim, d in space.dims.items():
    if dim not in out:
      values = d.grid() if not isinstance(d, Choice) else list(d.values)
      put(dim, d.default, [v for v in values if v != d.default][:2], 0.5, "no rule: the default")
  return out


def inert(dim: str, values: dict) -> bool:
  """Whether `dim` has no effect given the other values (changing it would repeat a trial)."""
  if dim == "num_negatives":
    return values.get("loss") == "softmax"
  return False


def starting_values(priors: dict[str, Prior]) -> dict:
  """The dimension values the playbook starts from."""
  return {dim: p.value for dim, p in priors.items()}


def starting_config(priors: dict[str, Prior], space: SearchSpace):
  """The playbook's configuration; a prior that does not validate keeps the space's default."""
  values = space.values_of(space.default_config())
  for dim, p in priors.items():
    trial = {**values, dim: p.value}
    try:
      space.validate(trial)
      values = trial
    except SpaceError:
      continue
  return space.validate(values)


def static_priors(priors: dict[str, Prior]) -> dict[str, Prior]:
  return {d: p for d, p in priors.items() if d not in DYNAMIC_FIELDS}


def table(priors: dict[str, Prior]) -> str:
  """Markdown: dimension, start, alternatives, confidence, rationale."""
  lines = ["| dimension | start | then | confidence | why |", "|---|---|---|---|---|"]
  for p in priors.values():
    alts = ", ".join(repr(a) for a in p.alternatives) or "-"
    lines.append(f"| {p.dimension} | {p.value!r} | {alts} | {p.confidence:.2f} | {p.rationale} |")
  return "\n".join(lines)
