"""Classical search strategies behind one interface: grid, random, optuna TPE.

A strategy proposes configs (`ask`) and hears results (`tell`). All three
start from the space's default config as their first trial, so that every
strategy (and the agent) is compared from the same starting point. They are
deterministic given their seed and the finished trials, which is what lets a
killed study resume: a rebuilt strategy skips what is already done.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from vmle_jax.config import DYNAMIC_FIELDS, TrialConfig
from vmle_jax.search.space import Choice, Float, Int, LogFloat, SearchSpace, SpaceError

STRATEGIES = ("grid", "random", "tpe")


@dataclasses.dataclass
class Proposal:
  """A config to train, with the proposer's notes (hypothesis, changed dimension...)."""

  config: TrialConfig
  note: dict = dataclasses.field(default_factory=dict)


def _add_new(out: list[Proposal], done: set[str], cfg: TrialConfig, strategy: str) -> None:
  """Append `cfg` to `out` unless its canonical JSON is in `done` (which it joins)."""
  key = cfg.canonical_json()
  if key not in done:
    done.add(key)
    out.append(Proposal(cfg, {"strategy": strategy}))


class Strategy(Protocol):
  name: str

  def ask(self, n: int, done: set[str]) -> list[Proposal]:
    """Up to n new proposals whose canonical JSON is not in `done`."""

  def tell(self, config: TrialConfig, value: float | None) -> None:
    """The validation NDCG@10 of a finished trial (None if it failed or diverged)."""


class GridStrategy:
  """The default config, then the space's grid in a seeded order, grouped by static signature.

  Points sharing a static signature are proposed together so that a batch
  fills the lanes of one program.
  """

  name = "grid"

  def __init__(self, space: SearchSpace, seed: int = 0):
    points = space.grid(seed=seed)
    first, rest = points[0], points[1:]
    order: dict = {first.static_signature(): [first]}
    for cfg in rest:
      order.setdefault(cfg.static_signature(), []).append(cfg)
    self.points = [cfg for group in order.values() for cfg in group]
    self.pos = 0

  def ask(self, n, done):
    out = []
    while len(out) < n and self.pos < len(self.points):
      cfg = self.points[self.pos]
      self.pos += 1
      _add_new(out, done, cfg, "grid")
    return out

  def tell(self, config, value):
    pass


class RandomStrategy:
  """Uniform random search, batched: one sampled static signature per batch.

  Each batch draws the static dimensions (sizes, loss, switches) once and the
  dynamic ones (rates, lr, ...) per trial, so a batch fills the lanes of one
  program. Every trial is still uniform over the space; only trials within
  a batch are correlated. The first trial is the space's default config.
  """

  name = "random"

  def __init__(self, space: SearchSpace, seed: int = 0):
    self.space = space
    self.rng = np.random.default_rng(seed)
    self.first = True
    self.static = [k for k in space.dims if k not in DYNAMIC_FIELDS]
    self.dynamic = [k for k in space.dims if k in DYNAMIC_FIELDS]

  def _batch_static(self) -> dict:
    if self.first:
      return {k: getattr(self.space.base, k) for k in self.static}
    return {k: self.space.dims[k].sample(self.rng) for k in self.static}

  def ask(self, n, done):
    out, tries = [], 0
    static = None
    while len(out) < n and tries < 100 * max(1, n):
      tries += 1
      if static is None or tries % 20 == 0:  # a fresh signature if this one keeps failing
        static = self._batch_static()
      if self.first:
        cfg, self.first = self.space.default_config(), False
      else:
        values = dict(static, **{k: self.space.dims[k].sample(self.rng) for k in self.dynamic})
        try:
          cfg = self.space.validate(values)
        except SpaceError:
          static = None
          continue
      _add_new(out, done, cfg, "random")
    return out

  def tell(self, config, value):
    pass


def optuna_distributions(space: SearchSpace) -> dict:
  import optuna
  out = {}
  for name, d in space.dims.items():
    if isinstance(d, Choice):
      out[name] = optuna.distributions.CategoricalDistribution(list(d.values))
    elif isinstance(d, Int):
      out[name] = optuna.distributions.IntDistribution(d.low, d.high, step=d.step)
    elif isinstance(d, LogFloat):
      out[name] = optuna.distributions.FloatDistribution(d.low, d.high, log=True)
    elif isinstance(d, Float):
      out[name] = optuna.distributions.FloatDistribution(d.low, d.high)
  return out


class TPEStrategy:
  """Optuna's TPE through ask-and-tell, K asks at a time; the default config is enqueued first."""

  name = "tpe"

  def __init__(self, space: SearchSpace, seed: int = 0, history=()):
    try:
      import optuna
    except ImportError:
      raise ImportError("the tpe strategy needs optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    self.optuna = optuna
    self.space = space
    self.dists = optuna_distributions(space)
    self.study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True))
    self.pending: dict[str, object] = {}
    seen = set()
    for cfg, value in history:  # replay finished trials on resume
      params = space.values_of(cfg)
      seen.add(cfg.canonical_json())
      state = (optuna.trial.TrialState.COMPLETE if value is not None
               else optuna.trial.TrialState.FAIL)
      self.study.add_trial(optuna.trial.create_trial(
          params=params, distributions=self.dists, value=value, state=state))
    if space.default_config().canonical_json() not in seen:
      self.study.enqueue_trial(space.values_of(space.default_config()))

  def ask(self, n, done):
    out, tries = [], 0
    while len(out) < n and tries < 50 * max(1, n):
      tries += 1
      trial = self.study.ask(self.dists)
      try:
        cfg = self.space.validate(trial.params)
      except SpaceError:
        self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        continue
      key = cfg.canonical_json()
      if key in done:
        # A repeat of a finished config: let TPE know it is no news.
        self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)
        continue
      done.add(key)
      self.pending[key] = trial
      out.append(Proposal(cfg, {"strategy": "tpe", "optuna_trial": trial.number}))
    return out

  def tell(self, config, value):
    trial = self.pending.pop(config.canonical_json(), None)
    if trial is None:
      return
    if value is None:
      self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
    else:
      self.study.tell(trial, value)


def make_strategy(name: str, space: SearchSpace, seed: int = 0, history=()) -> Strategy:
  """A strategy by name; `history` [(config, value)] replays finished trials."""
  if name == "grid":
    return GridStrategy(space, seed)
  if name == "random":
    return RandomStrategy(space, seed)
  if name == "tpe":
    return TPEStrategy(space, seed, history)
  raise ValueError(f"strategy={name!r}: not one of {', '.join(STRATEGIES)}")

