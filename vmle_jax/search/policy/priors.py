"""The playbook: what an experienced engineer concludes from a data set's statistics.

`playbook(stats, space, max_epochs)` turns the statistics of the data in
front of the agent (users, items, interactions, length percentiles, density,
repeat rate) and the backbone's search space into one `Prior` per searchable
dimension: a starting value, the alternatives worth trying next in order, how
sure the rule is, and a one-line rationale. Every rule reads statistics only,
never a data set's name, so it applies to data the code has never seen. The
heuristic planner starts from it, the Gemini prompt shows it as facts and
suggested starting points, and cognition summaries record each rule's move
relative to it (docs/design.md, "The playbook").

Each rule is one function `(Setting) -> Prior | None` whose thresholds are
fields of `PlaybookConfig` (policy/config.py, grouped under the rule's name);
`RULES` applies them in dependency order (the window and the batch before the
loss, the width before the heads, the dropout and the rate), and a dimension
no rule covers keeps the space's default with low confidence. Confidence is
the planner's prior that the starting value is already right (0..1); the
planner explores the least certain dimensions first.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

from vmle_jax.search.policy.config import DEFAULT_POLICY, PlaybookConfig
from vmle_jax.search.policy.state import DEFAULT_MAX_EPOCHS
from vmle_jax.search.space import Choice, Float, Int, SearchSpace, SpaceError

# Defaults when a statistic is missing: a mean length of 10, p90 twice and the longest
# four times the mean (what the synthetic generator gives).
MISSING_MEAN_LENGTH = 10.0
MISSING_P90_FACTOR = 2.0
MISSING_MAX_FACTOR = 4.0


@dataclasses.dataclass(frozen=True)
class Prior:
  """The playbook's view of one dimension."""

  dimension: str
  value: Any  # where to start
  alternatives: tuple  # what to try next, most promising first
  confidence: float  # prior that `value` is already right (0..1)
  rationale: str  # one line: which statistic says so, and why


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
  def from_stats(cls, stats: Mapping) -> "DataProfile":
    q = stats.get("len_quantiles") or {}
    avg = float(stats.get("avg_len") or MISSING_MEAN_LENGTH)
    users = int(stats.get("users") or 1)
    items = int(stats.get("items") or 1)
    return cls(
        users=users,
        items=items,
        interactions=int(stats.get("interactions") or users * avg),
        p50=float(q.get("p50", avg)),
        p90=float(q.get("p90", MISSING_P90_FACTOR * avg)),
        longest=float(q.get("max", MISSING_MAX_FACTOR * avg)),
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


def steps_per_epoch(profile: DataProfile, batch_size: int) -> int:
  return max(1, math.ceil(profile.users / batch_size))


def positives_per_item(profile: DataProfile, max_epochs: int) -> float:
  """Training positives an average item gets in the epoch cap: max_epochs x interactions /
  items. How far an item's embedding can move before the cap, which (unlike the steps in
  the cap) tells whether curves are still rising there (bench/regularisation.py)."""
  return max_epochs * profile.interactions / max(1, profile.items)


def _nearest(values: list, target: float) -> Any:
  return min(values, key=lambda v: (abs(math.log(v) - math.log(target)), v))


def _by_distance(values: list, start) -> tuple:
  """The other values, nearest to `start` first (ties: the larger first)."""
  others = [v for v in values if v != start]
  return tuple(sorted(others, key=lambda v: (abs(math.log(v) - math.log(start)), -v)))


def _bounded(space: SearchSpace, dim: str, value: float) -> float:
  """`value` within the dimension's bounds, to 3 significant digits."""
  d = space.dims.get(dim)
  if isinstance(d, (Float, Int)):
    value = min(max(value, d.low), d.high)
  return float(f"{value:.3g}")


def _sci(x: float) -> str:
  """A round number in short scientific notation: 0.001 -> "1e-3"."""
  return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")


@dataclasses.dataclass(frozen=True)
class Setting:
  """What every rule reads: the data's profile, the space, the epoch cap, the thresholds,
  and the priors the earlier rules chose."""

  profile: DataProfile
  space: SearchSpace
  max_epochs: int
  cfg: PlaybookConfig
  chosen: Mapping[str, Prior]

  @property
  def backbone(self) -> str:
    return self.space.backbone

  def start(self, dim: str):
    """The value an earlier rule chose for `dim`, else the study's fixed base value."""
    return self.chosen[dim].value if dim in self.chosen else getattr(self.space.base, dim)

  @property
  def total_steps(self) -> int:
    """Optimizer steps the epoch cap allows at the chosen batch size."""
    return self.max_epochs * steps_per_epoch(self.profile, self.start("batch_size"))

  @property
  def short(self) -> bool:
    """Whether the cap allows few steps: what climbs fast is preferred."""
    return self.total_steps < self.cfg.reference_steps * self.cfg.short_fraction

  @property
  def positives_per_item(self) -> float:
    """Training positives an average item gets in the epoch cap."""
    return positives_per_item(self.profile, self.max_epochs)

  @property
  def under_trained(self) -> bool:
    """Whether the cap leaves curves still rising: too few positives per item in it, so
    regularisation that slows the climb costs more than the over-fitting it prevents."""
    return self.positives_per_item < self.cfg.under_trained_positives

  def prior(self, dim: str, value, alternatives, confidence: float, rationale: str):
    """The Prior of `dim` (None when it is not searched), alternatives without repeats."""
    if dim not in self.space.dims:
      return None
    alts = []
    for a in alternatives:
      if a != value and a not in alts:
        alts.append(a)
    return Prior(dim, value, tuple(alts), round(confidence, 2), rationale)


Rule = Callable[[Setting], "Prior | None"]


# ------------------------------------------------------------------ structure


def window_covers_histories(s: Setting) -> Prior | None:
  """max_len: the smallest window that holds the full history of 90% of users."""
  lens = dimension_choices(s.space, "max_len") or [s.space.base.max_len]
  fits = [v for v in sorted(lens) if v >= s.profile.p90]
  window = fits[0] if fits else max(lens)
  return s.prior(
      "max_len",
      window,
      _by_distance(lens, window),
      s.cfg.window_confidence,
      f"covers the full history of 90% of users (p90 length {s.profile.p90:g}); longer only "
      "pads, shorter cuts the histories the model learns from",
  )


def batch_for_enough_steps(s: Setting) -> Prior | None:
  """batch_size: the largest (up to batch_max) giving batch_min_steps steps per epoch."""
  batches = sorted(dimension_choices(s.space, "batch_size") or [s.space.base.batch_size])
  enough = [b for b in batches if s.profile.users / b >= s.cfg.batch_min_steps]
  batch = min(max(enough) if enough else min(batches), s.cfg.batch_max)
  return s.prior(
      "batch_size",
      batch,
      _by_distance(batches, batch),
      s.cfg.batch_confidence,
      f"{s.profile.users:,} users: batch {batch} gives {steps_per_epoch(s.profile, batch)} steps "
      f"per epoch (at least {s.cfg.batch_min_steps} where the data allows; small data needs "
      "more, smaller steps)",
  )


def loss_from_catalogue(s: Setting) -> Prior | None:
  """loss: the full softmax where its logits fit logits_budget a lane, else sampled."""
  losses = dimension_choices(s.space, "loss")
  if not losses:
    return None
  tokens = s.start("batch_size") * s.start("max_len")
  logits = tokens * (s.profile.items + 1) * s.cfg.logits_copies * s.cfg.logits_bytes
  items = f"{s.profile.items:,} items"
  if logits <= s.cfg.logits_budget and "softmax" in losses:
    loss = "softmax"
    why = (
        f"full softmax over {items} fits ({logits / 2 ** 20:,.0f} MiB of logits per lane): the "
        "exact objective, which converges fastest and ranks best"
    )
  else:
    loss = "sampled_softmax" if "sampled_softmax" in losses else losses[0]
    why = (
        f"full-softmax logits over {items} would take {logits / 2 ** 30:,.1f} GiB per lane: "
        "sampled softmax with many shared negatives approximates it"
    )
  order = [x for x in ("softmax", "sampled_softmax", "bce") if x in losses and x != loss]
  return s.prior("loss", loss, order, s.cfg.loss_confidence, why)


def negatives_from_catalogue(s: Setting) -> Prior | None:
  """num_negatives: about negatives_per_item of the catalogue, at least negatives_floor."""
  negatives = dimension_choices(s.space, "num_negatives")
  if not negatives:
    return None
  want = min(max(negatives), max(s.cfg.negatives_floor, s.profile.items * s.cfg.negatives_per_item))
  neg = _nearest([n for n in negatives if n >= s.cfg.negatives_smallest_start] or negatives, want)
  share = round(1 / s.cfg.negatives_per_item)
  return s.prior(
      "num_negatives",
      neg,
      _by_distance(negatives, neg),
      s.cfg.negatives_confidence,
      f"shared negatives ~ 1/{share} of the {s.profile.items:,}-item catalogue for the sampled "
      "loss (more negatives: closer to the full softmax, slower steps)",
  )


def width_from_evidence(s: Setting) -> Prior | None:
  """hidden: wide from wide_from_interactions interactions, else narrow."""
  widths = dimension_choices(s.space, "hidden")
  if not widths:
    return None
  p = s.profile
  wide = p.interactions >= s.cfg.wide_from_interactions
  hidden = _nearest(widths, s.cfg.wide if wide else s.cfg.narrow)
  return s.prior(
      "hidden",
      hidden,
      _by_distance(widths, hidden),
      s.cfg.width_confidence,
      f"{p.interactions:,} interactions ({p.interactions / max(1, p.items):.0f} per item): "
      + (
          "enough evidence for a wider model, regularised by dropout"
          if hidden >= s.cfg.wide
          else "little evidence: a narrow model overfits less"
      ),
  )


def depth_from_lengths(s: Setting) -> Prior | None:
  """blocks: deep from a median length of deep_from_median_length (HSTU always); with few
  steps in the cap a deeper stack climbs slower, so depth is tried last."""
  d = s.space.dims.get("blocks")
  if not isinstance(d, Int):
    return None
  deep = s.profile.p50 >= s.cfg.deep_from_median_length or s.backbone == "hstu"
  blocks = min(max(s.cfg.deep_blocks if deep else s.cfg.shallow_blocks, d.low), d.high)
  short = s.short
  order = (blocks - 1, blocks + 1, blocks + 2) if short else (blocks + 1, blocks - 1, blocks + 2)
  return s.prior(
      "blocks",
      blocks,
      [b for b in order if d.low <= b <= d.high],
      s.cfg.depth_confidence_short if short else s.cfg.depth_confidence,
      f"median length {s.profile.p50:g}: "
      + (
          "long enough for two attention layers to compose patterns"
          if blocks >= s.cfg.deep_blocks
          else "short sequences: one block fits as well and overfits less"
      )
      + (
          f"; only {s.total_steps:,} steps in the epoch cap: a deeper stack climbs slower"
          if short
          else ""
      ),
  )


def heads_of_width(s: Setting) -> Prior | None:
  """heads: the most heads of at least min_head_dim dimensions (HSTU: hstu_heads)."""
  heads = dimension_choices(s.space, "heads")
  if not heads:
    return None
  hidden = s.start("hidden")
  h = max(heads_that_fit(heads, hidden, s.cfg.min_head_dim) or [min(heads)])
  if s.backbone == "hstu" and s.cfg.hstu_heads in heads and hidden % s.cfg.hstu_heads == 0:
    h = s.cfg.hstu_heads
  return s.prior(
      "heads",
      h,
      _by_distance(heads, h),
      s.cfg.heads_confidence,
      f"heads of at least {s.cfg.min_head_dim} dimensions at width {hidden}",
  )


def heads_that_fit(heads: list, hidden: int, min_head_dim: int) -> list:
  """The head counts that divide `hidden` into heads of at least `min_head_dim`."""
  return [h for h in heads if hidden % h == 0 and hidden // h >= min_head_dim]


def table_from_repeats(s: Setting) -> Prior | None:
  """tie_embeddings: a tied table favours items just seen, which pays only with repeats."""
  tie = s.profile.repeat_rate >= s.cfg.tie_from_repeat_rate
  return s.prior(
      "tie_embeddings",
      tie,
      [not tie],
      s.cfg.tie_confidence,
      f"repeat rate {s.profile.repeat_rate:.0%}: "
      + (
          "users re-consume, so scoring with the input table (which favours seen items) helps"
          if tie
          else "users rarely re-consume, and a tied table scores the items just seen "
          "high: a separate output table"
      ),
  )


# ------------------------------------------------------------------ rates


def dropout_from_density(s: Setting) -> Prior | None:
  """dropout: more the sparser the data (per decade below dropout_dense_density), a little
  more at great width, less when the cap allows few steps."""
  c, p = s.cfg, s.profile
  sparsity = math.log10(max(c.dropout_dense_density / max(p.density, c.density_floor), 1.0))
  wide = c.dropout_wide_extra if s.start("hidden") >= c.dropout_wide_from else 0.0
  short = s.short
  rate = (
      c.dropout_base
      + c.dropout_per_decade * sparsity
      + wide
      - (c.dropout_short_cut if short else 0.0)
  )
  per_unit = round(1 / c.dropout_grid)
  rate = _bounded(
      s.space, "dropout", round(min(max(rate, c.dropout_min), c.dropout_max) * per_unit) / per_unit
  )
  return s.prior(
      "dropout",
      rate,
      [
          _bounded(s.space, "dropout", rate + c.dropout_up),
          _bounded(s.space, "dropout", rate - c.dropout_down),
      ],
      c.dropout_confidence,
      f"density {p.density:.1e}: "
      + (
          "sparse data overfits quickly; strong dropout"
          if rate >= c.dropout_strong_from
          else "dense data: moderate dropout"
      )
      + (f", less with only {s.total_steps:,} steps in the epoch cap" if short else ""),
  )


def dropout_for_the_cap(s: Setting) -> Prior | None:
  """dropout: at most dropout_ceiling_under_trained, lower rates next, when the cap leaves
  curves under-trained (fewer than under_trained_positives positives per item in it).

  Dropout slows the climb that the cap already cuts short: in the committed trials of such
  caps, raising the dropout to 0.45 or more lost in all 14 same-configuration pairs (median
  -40% NDCG@10), while moves up to 0.4 stayed within -9%..+7% (bench/regularisation.py).
  None when the cap is long or the density's dropout and its alternatives already sit
  within the ceiling (that prior stands).
  """
  before = s.chosen.get("dropout")
  if before is None or not s.under_trained:
    return None
  c = s.cfg
  ceiling = _bounded(s.space, "dropout", c.dropout_ceiling_under_trained)
  rate = min(before.value, ceiling)
  up = _bounded(s.space, "dropout", rate + c.dropout_up)
  candidates = ([up] if up <= ceiling else []) + [
      _bounded(s.space, "dropout", rate - c.dropout_down),
      _bounded(s.space, "dropout", rate - 2 * c.dropout_down),
  ]
  keep = len(before.alternatives)  # as many alternatives as the density's rule gave
  alternatives = tuple(dict.fromkeys(a for a in candidates if a != rate))[:keep]
  if rate == before.value and alternatives == before.alternatives:
    return None
  return s.prior(
      "dropout",
      rate,
      alternatives,
      before.confidence,
      f"{before.rationale}; but only {s.positives_per_item:.0f} training positives per item in "
      f"the {s.max_epochs}-epoch cap: curves are still rising there and dropout slows them "
      f"further, so at most {ceiling:g} and lower rates next",
  )


def attn_dropout_follows(s: Setting) -> Prior | None:
  """attn_dropout: SASRec's single rate (the dropout's); HSTU's reference (none). Its
  alternative is a higher rate, or a lower one where that would pass the epoch cap's
  ceiling (dropout_for_the_cap: the committed pairs moved both rates together)."""
  sasrec = s.backbone == "sasrec"
  c = s.cfg
  rate = _bounded(s.space, "attn_dropout", s.start("dropout") if sasrec else c.attn_dropout_hstu)
  alternative = _bounded(s.space, "attn_dropout", rate + c.dropout_up)
  capped = s.under_trained and alternative > c.dropout_ceiling_under_trained
  if capped:
    alternative = _bounded(s.space, "attn_dropout", rate - c.dropout_down)
  return s.prior(
      "attn_dropout",
      rate,
      [alternative],
      c.attn_dropout_confidence,
      (
          "the same rate as the residual dropout (SASRec's single rate)"
          if sasrec
          else "HSTU's reference uses no attention dropout"
      )
      + (
          f"; lower next, at most {c.dropout_ceiling_under_trained:g} with only "
          f"{s.positives_per_item:.0f} training positives per item in the {s.max_epochs}-epoch cap"
          if capped
          else ""
      ),
  )


def weight_decay_second_order(s: Setting) -> Prior | None:
  """weight_decay: none to start; dropout carries the regularisation. When the cap leaves
  curves under-trained (`Setting.under_trained`) the alternative is a lighter decay: more
  regularisation would only slow the curves the cap already cuts short."""
  under = s.under_trained
  c = s.cfg
  return s.prior(
      "weight_decay",
      c.weight_decay_start,
      [c.weight_decay_alternative_under_trained if under else c.weight_decay_alternative],
      c.weight_decay_confidence,
      "dropout carries the regularisation; decoupled decay is a second-order knob"
      + (
          f", and light with only {s.positives_per_item:.0f} training positives per item in the "
          f"{s.max_epochs}-epoch cap (curves still rising there)"
          if under
          else ""
      ),
  )


def lr_from_width_and_steps(s: Setting) -> Prior | None:
  """lr: reference_lr at reference_width, x sqrt(width ratio), x sqrt(reference steps /
  steps in the cap) clipped to [1, lr_max_boost]."""
  c, hidden = s.cfg, s.start("hidden")
  boost = min(max(math.sqrt(c.reference_steps / s.total_steps), 1.0), c.lr_max_boost)
  lr = _bounded(s.space, "lr", c.reference_lr * math.sqrt(c.reference_width / hidden) * boost)
  return s.prior(
      "lr",
      lr,
      [_bounded(s.space, "lr", lr * c.lr_factor), _bounded(s.space, "lr", lr / c.lr_factor)],
      c.lr_confidence,
      f"{_sci(c.reference_lr)} at width {c.reference_width}, x sqrt({c.reference_width}/{hidden}) "
      f"for width {hidden}"
      + (
          f", x{boost:.1f} because the cap of {s.max_epochs} epochs allows only "
          f"{s.total_steps:,} steps"
          if boost > 1.0
          else ""
      ),
  )


# ------------------------------------------------------------------ reference choices


def beta2_reference(s: Setting) -> Prior | None:
  b2 = dimension_choices(s.space, "beta2")
  if not b2:
    return None
  start = s.cfg.beta2 if s.cfg.beta2 in b2 else b2[0]
  return s.prior(
      "beta2",
      start,
      [v for v in b2 if v != s.cfg.beta2],
      s.cfg.beta2_confidence,
      "a shorter second-moment horizon adapts faster to rare items (original SASRec: "
      f"{s.cfg.beta2:g})",
  )


def norm_reference(s: Setting) -> Prior | None:
  return s.prior(
      "norm",
      "pre",
      ["post"],
      s.cfg.norm_confidence,
      "pre-LN trains stably at higher learning rates",
  )


def ffn_reference(s: Setting) -> Prior | None:
  return s.prior(
      "ffn",
      "gelu",
      ["swiglu"],
      s.cfg.ffn_confidence,
      "the standard activation; SwiGLU adds parameters",
  )


def ffn_mult_reference(s: Setting) -> Prior | None:
  mults = dimension_choices(s.space, "ffn_mult")
  return s.prior(
      "ffn_mult",
      s.cfg.ffn_mult,
      [m for m in sorted(mults) if m != s.cfg.ffn_mult],
      s.cfg.ffn_mult_confidence,
      "original SASRec's feed-forward size; wider mostly adds overfitting on sparse data",
  )


def positions_reference(s: Setting) -> Prior | None:
  pos = "relative" if s.backbone == "hstu" else "learned"
  return s.prior(
      "positions",
      pos,
      [x for x in dimension_choices(s.space, "positions") if x != pos],
      s.cfg.positions_confidence,
      "the backbone's reference positional scheme",
  )


def l2_norm_reference(s: Setting) -> Prior | None:
  l2 = s.backbone == "hstu"
  return s.prior(
      "l2_norm",
      l2,
      [not l2],
      s.cfg.l2_norm_confidence,
      "HSTU's normalised embeddings with a temperature"
      if l2
      else "raw dot products; normalised scores then need a temperature",
  )


def temperature_reference(s: Setting) -> Prior | None:
  hstu = s.backbone == "hstu"
  t = s.cfg.temperature_hstu if hstu else s.cfg.temperature_sasrec
  f = s.cfg.temperature_factor
  return s.prior(
      "temperature",
      _bounded(s.space, "temperature", t),
      [_bounded(s.space, "temperature", t * f), _bounded(s.space, "temperature", t / f)],
      s.cfg.temperature_confidence,
      "with normalised scores a low temperature separates the positive"
      if hstu
      else "no rescaling of raw scores",
  )


def _hstu_dim(dim: str, divisor_field: str) -> Rule:
  def rule(s: Setting) -> Prior | None:
    values = dimension_choices(s.space, dim)
    if not values:
      return None
    hidden = s.start("hidden")
    v = _nearest(values, max(s.cfg.hstu_dim_floor, hidden // getattr(s.cfg, divisor_field)))
    return s.prior(
        dim, v, _by_distance(values, v), s.cfg.hstu_dims_confidence, f"scaled to width {hidden}"
    )

  rule.__name__ = f"{dim}_of_width"
  rule.__doc__ = f"{dim}: HSTU's width / {divisor_field.split('_')[0]} divisor, at least the floor."
  return rule


linear_dim_of_width = _hstu_dim("linear_dim", "linear_dim_divisor")
attention_dim_of_width = _hstu_dim("attention_dim", "attention_dim_divisor")


# The rules in dependency order: the window and the batch make the loss's logits; the width
# scales the heads, the dropout and the rate; the steps in the cap (batch) shape the depth,
# the dropout and the rate; the positives per item in the cap bound the dropout and the decay
# (after the density's dropout, before the attention dropout that follows it).
RULES: tuple[Rule, ...] = (
    window_covers_histories,
    batch_for_enough_steps,
    loss_from_catalogue,
    negatives_from_catalogue,
    width_from_evidence,
    depth_from_lengths,
    heads_of_width,
    table_from_repeats,
    dropout_from_density,
    dropout_for_the_cap,
    attn_dropout_follows,
    weight_decay_second_order,
    lr_from_width_and_steps,
    beta2_reference,
    norm_reference,
    ffn_reference,
    ffn_mult_reference,
    positions_reference,
    l2_norm_reference,
    temperature_reference,
    linear_dim_of_width,
    attention_dim_of_width,
)


def default_prior(s: Setting, dim: str) -> Prior | None:
  """A dimension no rule covers: the space's default and the next values, low confidence."""
  d = s.space.dims[dim]
  values = d.grid() if not isinstance(d, Choice) else list(d.values)
  others = [v for v in values if v != d.default][: s.cfg.default_alternatives]
  return s.prior(dim, d.default, others, s.cfg.default_confidence, "no rule: the default")


def playbook(
    stats: Mapping,
    space: SearchSpace,
    max_epochs: int = DEFAULT_MAX_EPOCHS,
    config: PlaybookConfig = DEFAULT_POLICY.playbook,
) -> dict[str, Prior]:
  """One Prior per searchable dimension of `space` (see the module docstring)."""
  profile = DataProfile.from_stats(stats)
  chosen: dict[str, Prior] = {}
  for rule in RULES:
    prior = rule(Setting(profile, space, max_epochs, config, chosen))
    if prior is not None:
      chosen[prior.dimension] = prior
  setting = Setting(profile, space, max_epochs, config, chosen)
  for dim in space.dims:
    if dim not in chosen:
      chosen[dim] = default_prior(setting, dim)
  return chosen


def inert(dim: str, values: dict) -> bool:
  """Whether `dim` has no effect given the other values (changing it would repeat a trial)."""
  if dim == "num_negatives":
    return values.get("loss") == "softmax"
  return False


def starting_config(priors: Mapping[str, Prior], space: SearchSpace):
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


def table(priors: Mapping[str, Prior]) -> str:
  """Markdown: dimension, start, alternatives, confidence, rationale."""
  lines = ["| dimension | start | then | confidence | why |", "|---|---|---|---|---|"]
  for p in priors.values():
    alts = ", ".join(repr(a) for a in p.alternatives) or "-"
    lines.append(f"| {p.dimension} | {p.value!r} | {alts} | {p.confidence:.2f} | {p.rationale} |")
  return "\n".join(lines)
