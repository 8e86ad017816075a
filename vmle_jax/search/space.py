"""The search space: typed dimensions with defaults and bounds, per backbone.

A dimension is a `Choice`, `Int`, `Float` or `LogFloat`. The space validates
a proposed config (from a strategy, a planner or a user), listing every
problem in one readable error, and turns it into a `TrialConfig`, whose
canonical JSON is the trial's identity in the memory. Fields not in the
space keep the study's base config values.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from vmle_jax.config import FIELD_NAMES, TrialConfig, backbone_config


class SpaceError(ValueError):
  """A proposed config breaks the search space; the message lists every problem."""


@dataclasses.dataclass(frozen=True)
class Choice:
  values: tuple
  default: Any

  def check(self, name, v):
    if v not in self.values:
      return f"{name}={v!r} is not one of {list(self.values)}"
    return None

  def sample(self, rng):
    return self.values[rng.integers(len(self.values))]

  def grid(self):
    return list(self.values)

  def describe(self):
    return f"one of {list(self.values)}"


@dataclasses.dataclass(frozen=True)
class Int:
  low: int
  high: int
  default: int
  step: int = 1

  def check(self, name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
      if isinstance(v, float) and v.is_integer():
        v = int(v)
      else:
        return f"{name}={v!r} is not an integer"
    if not self.low <= v <= self.high:
      return f"{name}={v} is outside [{self.low}, {self.high}]"
    if (v - self.low) % self.step:
      return f"{name}={v} is not on the grid {self.low}, {self.low + self.step}, ..."
    return None

  def sample(self, rng):
    n = (self.high - self.low) // self.step
    return int(self.low + self.step * rng.integers(n + 1))

  def grid(self):
    if (self.high - self.low) // self.step <= 4:
      return list(range(self.low, self.high + 1, self.step))
    return sorted(
        {
            self.low,
            self.default,
            self.high,
            self.low + self.step * ((self.high - self.low) // self.step // 2),
        }
    )

  def describe(self):
    return f"integer in [{self.low}, {self.high}]" + (f" step {self.step}" if self.step > 1 else "")


@dataclasses.dataclass(frozen=True)
class Float:
  low: float
  high: float
  default: float

  def check(self, name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
      return f"{name}={v!r} is not a number"
    if not math.isfinite(v) or not self.low <= v <= self.high:
      return f"{name}={v} is outside [{self.low}, {self.high}]"
    return None

  def sample(self, rng):
    return float(rng.uniform(self.low, self.high))

  def grid(self):
    return sorted({_round(float(v)) for v in np.linspace(self.low, self.high, 5)} | {self.default})

  def describe(self):
    return f"number in [{self.low}, {self.high}]"


@dataclasses.dataclass(frozen=True)
class LogFloat(Float):
  """A positive number searched on a log scale."""

  def sample(self, rng):
    return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

  def grid(self):
    return sorted({_round(float(v)) for v in np.geomspace(self.low, self.high, 5)} | {self.default})

  def describe(self):
    return f"positive number in [{self.low:g}, {self.high:g}], log scale"


def _round(v):
  """Floats rounded to 4 significant digits, so identities are stable and readable."""
  if isinstance(v, float):
    return float(f"{v:.4g}")
  return v


# Dimensions of the training recipe, the same for every backbone.
TRAINING_DIMS = {
    "loss": Choice(("bce", "sampled_softmax", "softmax"), "sampled_softmax"),
    "num_negatives": Choice((1, 16, 64, 128, 256, 512), 256),
    "max_len": Choice((20, 50, 100, 200), 50),
    "batch_size": Choice((64, 128, 256, 512), 128),
    "lr": LogFloat(1e-4, 1e-2, 1e-3),
    "weight_decay": Float(0.0, 0.5, 0.0),
    "dropout": Float(0.0, 0.8, 0.2),
    "beta2": Choice((0.98, 0.999), 0.98),
}

SASREC_SPACE = {
    "hidden": Choice((32, 64, 128, 256), 64),
    "blocks": Int(1, 4, 2),
    "heads": Choice((1, 2, 4), 1),
    "ffn_mult": Choice((1, 2, 4), 1),
    "norm": Choice(("pre", "post"), "pre"),
    "tie_embeddings": Choice((True, False), True),
    **TRAINING_DIMS,
    "attn_dropout": Float(0.0, 0.8, 0.2),
    "ffn": Choice(("gelu", "swiglu"), "gelu"),
    "positions": Choice(("learned", "relative", "rope"), "learned"),
    "l2_norm": Choice((False, True), False),
    "temperature": LogFloat(0.02, 1.0, 1.0),
}

HSTU_SPACE = {
    "hidden": Choice((32, 64, 128, 256), 64),
    "blocks": Int(1, 4, 2),
    "heads": Choice((1, 2, 4), 2),
    "linear_dim": Choice((16, 32, 64), 32),
    "attention_dim": Choice((16, 32, 64), 32),
    "positions": Choice(("relative", "learned", "rope"), "relative"),
    "l2_norm": Choice((True, False), True),
    "tie_embeddings": Choice((True, False), True),
    **TRAINING_DIMS,
    "attn_dropout": Float(0.0, 0.8, 0.0),
    "temperature": LogFloat(0.01, 1.0, 0.05),
}

SPACES = {"sasrec": SASREC_SPACE, "hstu": HSTU_SPACE}

# Dimensions a grid search covers by default: a full grid over every
# dimension would be millions of points. These are the ones that move
# NDCG@10 most in our studies: the loss, the window, the width and the
# two rates (HSTU: its temperature instead of the window).
GRID_DIMS = {
    "sasrec": ("loss", "max_len", "hidden", "lr", "dropout"),
    "hstu": ("loss", "hidden", "lr", "dropout", "temperature"),
}


@dataclasses.dataclass(frozen=True)
class SearchSpace:
  """Dimensions for one backbone over a base config (fields not searched stay as in base)."""

  backbone: str
  dims: dict
  base: TrialConfig

  @classmethod
  def for_backbone(
      cls,
      backbone: str,
      base: TrialConfig | None = None,
      only: Sequence[str] | None = None,
      fixed: dict | None = None,
  ) -> "SearchSpace":
    """The backbone's space around `base` (default: the backbone's defaults), as it is.

    The search starts from `base`: every dimension's default is the base's
    value (a value outside a dimension joins it), so a recipe, a preset or a
    flag seen by `config.resolve` is where grid, random and TPE begin.
    `only` restricts the searched dimensions; `fixed` values are set on the
    base and not searched.
    """
    if backbone not in SPACES:
      raise SpaceError(f"backbone={backbone!r}: no search space; known: {', '.join(SPACES)}")
    dims = dict(SPACES[backbone])
    if only is not None:
      unknown = set(only) - set(dims)
      if unknown:
        raise SpaceError(f"unknown dimensions {sorted(unknown)}; known: {', '.join(dims)}")
      dims = {k: v for k, v in dims.items() if k in only}
    base = base or backbone_config(backbone)
    if base.backbone != backbone:
      raise SpaceError(f"the base config is a {base.backbone} config, not {backbone}")
    fixed = dict(fixed or {})
    base = base.replace(**fixed)
    dims = {k: _around(d, getattr(base, k)) for k, d in dims.items() if k not in fixed}
    return cls(backbone=backbone, dims=dims, base=base)

  @property
  def names(self) -> list[str]:
    return list(self.dims)

  def default_config(self) -> TrialConfig:
    return self.base

  def problems(self, values: dict) -> list[str]:
    """Every reason `values` (a partial or full config dict) is not in the space."""
    out = []
    for name, v in values.items():
      if name in self.dims:
        p = self.dims[name].check(name, v)
        if p:
          out.append(p)
      elif name not in FIELD_NAMES:
        out.append(f"{name!r} is not a parameter (searchable: {', '.join(self.dims)})")
      elif v != getattr(self.base, name):
        out.append(f"{name} is fixed at {getattr(self.base, name)!r} in this study")
    return out

  def validate(self, values: dict) -> TrialConfig:
    """The TrialConfig for `values` (missing dimensions take the base's), or SpaceError."""
    problems = self.problems(values)
    if problems:
      raise SpaceError("; ".join(problems))
    merged = {
        **self.base.to_dict(),
        **{k: _round(_coerce(self.dims.get(k), v)) for k, v in values.items()},
    }
    try:
      return TrialConfig(**merged)
    except ValueError as e:
      raise SpaceError(str(e)) from None

  def values_of(self, cfg: TrialConfig) -> dict:
    """The searched dimensions' values of a config."""
    return {k: getattr(cfg, k) for k in self.dims}

  def sample(self, rng: np.random.Generator, max_tries: int = 100) -> TrialConfig:
    """A uniformly random valid config (rejection of invalid combinations, e.g. heads > hidden)."""
    for _ in range(max_tries):
      try:
        return self.validate({k: d.sample(rng) for k, d in self.dims.items()})
      except SpaceError:
        continue
    raise SpaceError("could not sample a valid config in 100 tries")

  def grid(self, seed: int = 0, limit: int | None = None) -> list[TrialConfig]:
    """Valid combinations of the dimensions' grid levels: the default first, then a seeded order.

    A budget rarely covers a full grid, so the points are visited in a
    shuffled order (seeded) rather than corner first; at most `limit`.
    """
    names = list(self.dims)
    levels = [self.dims[n].grid() for n in names]
    total = math.prod(len(l) for l in levels)
    rng = np.random.default_rng(seed)
    # Index the full product without materialising it when it is large.
    if total <= 200_000:
      order = rng.permutation(total)
    else:
      order = rng.choice(total, size=min(total, 20 * (limit or 1000)), replace=False)
    out, seen = [self.base], {self.base.canonical_json()}
    for flat in order:
      if limit is not None and len(out) >= limit:
        break
      combo, rest = [], int(flat)
      for lv in reversed(levels):
        rest, i = divmod(rest, len(lv))
        combo.append(lv[i])
      try:
        cfg = self.validate(dict(zip(names, reversed(combo))))
      except SpaceError:
        continue
      key = cfg.canonical_json()
      if key not in seen:
        seen.add(key)
        out.append(cfg)
    return out

  def describe(self) -> dict[str, str]:
    """Human-readable dimension descriptions (used in prompts and --help)."""
    return {k: f"{d.describe()}, default {d.default!r}" for k, d in self.dims.items()}


def typed_value(dim, value):
  """`value` in a categorical dimension's own type: LLM answers and exported rules give
  'True' for True and '128' for 128 (other dimensions: `value` as it is)."""
  values = getattr(dim, "values", None)
  if values is None or value in values:
    return value
  for v in values:
    if str(v).lower() == str(value).strip().lower():
      return v
  return value


def _around(dim, value):
  """`dim` with `value` as its default, widened to hold it if it lies outside."""
  if isinstance(dim, Choice):
    values = dim.values if value in dim.values else (*dim.values, value)
    return dataclasses.replace(dim, values=values, default=value)
  if isinstance(dim, Int):
    off_grid = (value - dim.low) % dim.step != 0
    return dataclasses.replace(
        dim,
        low=min(dim.low, value),
        high=max(dim.high, value),
        default=value,
        step=1 if off_grid else dim.step,
    )
  return dataclasses.replace(dim, low=min(dim.low, value), high=max(dim.high, value), default=value)


def _coerce(dim, v):
  if isinstance(dim, Int) and isinstance(v, float):
    return int(v)
  if isinstance(dim, Float) and isinstance(v, (int, np.integer)) and not isinstance(v, bool):
    return float(v)
  if isinstance(v, np.generic):
    return v.item()
  return v
