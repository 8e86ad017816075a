"""Search strategies behind one interface: grid, random, random-packed, optuna TPE.

`Strategy` is the whole lifecycle the study loop drives: bind to the study,
ask for a batch, tell each result, hear that a batch ended, finish, and
resume from the finished trials after a kill. Grid, random and TPE start
from the space's default config; `tpe-playbook` from the agent's playbook
batch instead (search/seeded.py). They are deterministic given their seed
and the sequence of asks and results, so a killed study resumes by
replaying its finished batches (`resume`): the rebuilt strategy then
proposes exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from vmle_jax.config import DYNAMIC_FIELDS, TrialConfig
from vmle_jax.search.space import GRID_DIMS, Choice, Float, Int, LogFloat, SearchSpace, SpaceError


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


class Strategy:
  """A search strategy's lifecycle; subclasses implement `ask` and whatever else they need."""

  name = "strategy"

  def bind(self, store, study: dict, data) -> None:
    """Called once the study exists (the agent reads its memory through the store)."""

  def ask(self, n: int, done: set[str]) -> list[Proposal]:
    """Up to n new proposals whose canonical JSON is not in `done` (which they join)."""
    raise NotImplementedError

  def tell(self, config: TrialConfig, value: float | None) -> None:
    """The validation NDCG@10 of a finished trial (None if it failed or diverged)."""

  def after_batch(self, trial_ids: list[int]) -> None:
    """Every trial of the batch has finished (the agent reflects here)."""

  def finish(self) -> dict | None:
    """The study ended; returns a cognition summary if the strategy distills one."""
    return None

  def tokens_used(self) -> int:
    return 0

  def propose(self, n: int, done: set[str]) -> list[Proposal]:
    """The next batch: proposals a resume carried over from a cut batch first, then `ask`."""
    carried = [p for p in getattr(self, "_carried", []) if p.config.canonical_json() not in done]
    self._carried = []
    for p in carried[:n]:
      done.add(p.config.canonical_json())
    out = carried[:n]
    return out + (self.ask(n - len(out), done) if n > len(out) else [])

  def resume(
      self, batches: list[list[tuple[TrialConfig, float | None]]], sizes: list[int] | None = None
  ) -> int:
    """Replays finished batches (ask as many as the batch was asked for, then tell the
    stored results, in order), so the next proposals are what an uninterrupted run would
    make; proposals of a batch cut short by a kill are carried over to `propose`. Returns
    the replayed proposals that matched no stored trial (0 for a deterministic strategy)."""
    done: set[str] = set()
    mismatched = 0
    sizes = sizes or [len(b) for b in batches]
    for i, (batch, size) in enumerate(zip(batches, sizes)):
      stored = {cfg.canonical_json(): (cfg, value) for cfg, value in batch}
      unrun = []
      for p in self.ask(size, done):
        hit = stored.pop(p.config.canonical_json(), None)
        if hit is None:
          unrun.append(p)
        else:
          self.tell(*hit)
      last = i == len(batches) - 1
      if last and not stored:
        self._carried = unrun  # the cut batch's other trials: proposed next, unchanged
      else:
        mismatched += len(unrun) if not last else len(stored)
        for p in unrun:
          self.forget(p.config)
      for cfg, value in stored.values():  # trials the replay did not propose
        done.add(cfg.canonical_json())
        self.record(cfg, value)
    return mismatched

  def forget(self, config: TrialConfig) -> None:
    """A replayed proposal that was never run (nondeterminism): drop it."""

  def record(self, config: TrialConfig, value: float | None) -> None:
    """A finished trial this strategy did not propose on replay: learn from it anyway."""
    self.tell(config, value)


class GridStrategy(Strategy):
  """The default config, then the space's grid in a seeded shuffled order.

  The study loop groups each batch's points by static signature, so points
  of one signature that land in the same batch share a program; the order is
  not regrouped globally, which would keep one structure for hundreds of points.
  """

  name = "grid"

  def __init__(self, space: SearchSpace, seed: int = 0):
    self.points = space.grid(seed=seed)
    self.pos = 0

  def ask(self, n, done):
    out = []
    while len(out) < n and self.pos < len(self.points):
      cfg = self.points[self.pos]
      self.pos += 1
      _add_new(out, done, cfg, "grid")
    return out


class RandomStrategy(Strategy):
  """Uniform random search: every trial drawn independently over every dimension.

  Trials of a batch rarely share a static signature, so most buckets hold
  one lane: this is random search as its name says, at its real cost. The
  first trial is the space's default config.
  """

  name = "random"

  def __init__(self, space: SearchSpace, seed: int = 0):
    self.space = space
    self.rng = np.random.default_rng(seed)
    self.first = True

  def ask(self, n, done):
    out, tries = [], 0
    while len(out) < n and tries < 100 * max(1, n):
      tries += 1
      if self.first:
        cfg, self.first = self.space.default_config(), False
      else:
        try:
          cfg = self.space.sample(self.rng)
        except SpaceError:
          continue
      _add_new(out, done, cfg, self.name)
    return out


class PackedRandomStrategy(Strategy):
  """Random search shaped for lanes: one static signature drawn per batch.

  Each batch draws the static dimensions (sizes, loss, switches) once and the
  dynamic ones (rates, lr, ...) per trial, so a batch fills the lanes of one
  program. Each trial is still uniform over the space, but the trials of a
  batch share a structure: fewer structures are tried than with `random`.
  """

  name = "random-packed"

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
      _add_new(out, done, cfg, self.name)
    return out


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


class TPEStrategy(Strategy):
  """Optuna's TPE through ask-and-tell, K asks at a time; the default config is enqueued first.

  `startup_trials` is TPE's random phase (`n_startup_trials`). Optuna's
  default of 10 with batches of 8 would leave a 16-trial study entirely
  random (only 8 trials are complete when the second batch is asked), so the
  launchers set it to the lane count: from the second batch on, proposals
  come from the model of the finished trials. `warm_start` configs are
  enqueued after the default (a warm-started TPE, as an Optuna user would
  seed it with known good configurations).
  """

  name = "tpe"

  def __init__(
      self,
      space: SearchSpace,
      seed: int = 0,
      startup_trials: int = 8,
      warm_start=(),
      enqueue_default: bool = True,
  ):
    """`enqueue_default=False` leaves the default config out of the queue (a subclass that
    seeds TPE with a first batch of its own, search/seeded.py)."""
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
        sampler=optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            constant_liar=True,
            n_startup_trials=max(1, int(startup_trials)),
        ),
    )
    self.startup_trials = max(1, int(startup_trials))
    self.pending: dict[str, object] = {}
    self._enqueued: set[str] = set()
    self.enqueue([space.default_config()] if enqueue_default else [])
    self.enqueue(warm_start)

  def enqueue(self, configs) -> None:
    """Configs TPE proposes next, in order, before sampling (duplicates enqueued once)."""
    for cfg in configs:
      if cfg.canonical_json() not in self._enqueued:
        self._enqueued.add(cfg.canonical_json())
        self.study.enqueue_trial(self.space.values_of(cfg))

  def record(self, config, value):
    """A finished trial added to TPE's history without an ask."""
    state = (
        self.optuna.trial.TrialState.COMPLETE
        if value is not None
        else self.optuna.trial.TrialState.FAIL
    )
    self.study.add_trial(
        self.optuna.trial.create_trial(
            params=self.space.values_of(config), distributions=self.dists, value=value, state=state
        )
    )

  def forget(self, config):
    trial = self.pending.pop(config.canonical_json(), None)
    if trial is not None:
      self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)

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


def tpe_after(space: SearchSpace, trials, seed: int) -> tuple[TPEStrategy, int]:
  """(TPE that has seen `trials`, how many it could not read): a study's finished trials
  (planner views: config dict and value) replayed into a fresh seeded TPE, so that the same
  trials give the same proposals. A trial outside the space (a value its dimensions do not
  allow) is skipped and counted."""
  tpe = TPEStrategy(space, seed, startup_trials=1, enqueue_default=False)
  skipped = 0
  for t in trials:
    try:
      cfg = space.validate({k: t["config"][k] for k in space.dims if k in t["config"]})
      tpe.record(cfg, t["value"])
    except (SpaceError, ValueError):
      skipped += 1
  return tpe, skipped


@dataclasses.dataclass(frozen=True)
class StrategyOptions:
  """What a launcher knows when it builds a strategy; each factory reads what it needs."""

  seed: int = 0
  lanes: int = 8  # TPE's random startup phase is one batch of this many trials
  warm_start: tuple = ()  # TPE: configs proposed first after the default
  planner: str = "heuristic"  # the agent's planner (search/planners)
  model: str | None = None  # the LLM planner's model
  planner_options: dict | None = None
  planner_budget_s: float | None = None
  summary: dict | None = None  # a cognition summary the agent starts from
  recall: str = "study"  # what the agent recalls (its own study in a comparison)
  log: Callable[[str], None] = print


# The share of every later agent batch that `agent-tpe` gives to TPE: half. Unmeasured as a
# share; the split is even because each side won a group at equal minutes: the agent beat
# TPE on ml-100k/SASRec (5/5 seeds) and Toys (3/3), while on ml-100k/HSTU the seeded control
# (all TPE after the playbook's batch) beat the agent with moves its planner never makes
# (one block, attention dropout and weight decay well above the playbook's).
AGENT_TPE_SHARE = 0.5


def _agent(space: SearchSpace, o: StrategyOptions, tpe_share: float = 0.0) -> Strategy:
  """The agent with its planner (imported here: the agent module imports this one)."""
  from vmle_jax.search.agent import AgentStrategy
  from vmle_jax.search.planners import make_planner

  return AgentStrategy(
      make_planner(o.planner, o.model, **(o.planner_options or {})),
      space,
      recall=o.recall,
      summary=o.summary,
      log=o.log,
      planner_budget_s=o.planner_budget_s,
      tpe_share=tpe_share,
      seed=o.seed,
  )


def _agent_with_summary(space: SearchSpace, o: StrategyOptions) -> Strategy:
  """The agent with a summary it must be given (without one it would be the plain agent)."""
  if not o.summary:
    raise ValueError("strategy 'agent-summary' needs a cognition summary (--summary_from)")
  return _agent(space, o)


def _tpe_warm(space: SearchSpace, o: StrategyOptions) -> Strategy:
  """TPE with warm-start configurations it must be given (without, it would be plain TPE)."""
  if not o.warm_start:
    raise ValueError("strategy 'tpe-warm' needs warm-start configurations")
  return TPEStrategy(space, o.seed, startup_trials=o.lanes, warm_start=o.warm_start)


def _tpe_playbook(space: SearchSpace, o: StrategyOptions) -> Strategy:
  """TPE seeded with the agent's playbook batch (imported here: seeded.py imports the agent)."""
  from vmle_jax.search.seeded import PlaybookTPEStrategy

  return PlaybookTPEStrategy(
      space, o.seed, startup_trials=o.lanes, recall=o.recall, summary=o.summary
  )


@dataclasses.dataclass(frozen=True)
class StrategyEntry:
  """A registered strategy: its factory, its line in the launchers' help, and how it is run."""

  build: Callable[[SearchSpace, StrategyOptions], Strategy]
  help: str
  planner: bool = False  # built around a planner: vmle-tune and vmle-compare run it, not vmle-sweep
  compared: bool = True  # one of vmle-compare's default strategies
  dims: dict | None = None  # per backbone, the dimensions it searches when --dims is not given
  needs: str | None = None  # an input it cannot run without: "summary" or "warm_start"

  def label(self, name: str, planner: str = "heuristic") -> str:
    """The name its studies are stored under: `agent:<planner>` for a planner's strategy."""
    return f"{name}:{planner}" if self.planner else name

  def default_dims(self, backbone: str) -> list[str] | None:
    return list(self.dims[backbone]) if self.dims else None


# Every search strategy, by the name the launchers and bench/ use. A new strategy is one entry
# here plus its class; vmle-sweep's --strategy, vmle-compare's --strategies and the comparison
# read these keys.
STRATEGIES: dict[str, StrategyEntry] = {
    "agent": StrategyEntry(_agent, "the agent (with --planner)", planner=True),
    "grid": StrategyEntry(
        lambda space, o: GridStrategy(space, o.seed),
        "seeded order over its default grid dimensions",
        dims=GRID_DIMS,
    ),
    "random": StrategyEntry(
        lambda space, o: RandomStrategy(space, o.seed), "every trial drawn independently"
    ),
    "random-packed": StrategyEntry(
        lambda space, o: PackedRandomStrategy(space, o.seed),
        "one structure per batch, rates per lane: full lanes, fewer structures",
        compared=False,
    ),
    "tpe": StrategyEntry(
        lambda space, o: TPEStrategy(
            space, o.seed, startup_trials=o.lanes, warm_start=o.warm_start
        ),
        "optuna; its random startup is one batch",
    ),
    # The transfer arms (bench/transfer.py): the same strategies started from other data
    # sets' lessons, named apart so a comparison holds them beside the plain ones.
    "agent-summary": StrategyEntry(
        _agent_with_summary,
        "the agent started from a cognition summary (--summary_from)",
        planner=True,
        compared=False,
        needs="summary",
    ),
    "tpe-warm": StrategyEntry(
        _tpe_warm,
        "tpe whose first proposals are other data sets' best configurations (enqueued)",
        compared=False,
        needs="warm_start",
    ),
    # The seeded control: what the agent's later batches add over its playbook.
    "tpe-playbook": StrategyEntry(
        _tpe_playbook,
        "tpe whose first batch is the agent's playbook batch (enqueued), not the default config",
    ),
    # The agent taking what TPE does better: TPE's proposals inside its later batches.
    "agent-tpe": StrategyEntry(
        lambda space, o: _agent(space, o, AGENT_TPE_SHARE),
        "the agent, with half of every later batch's lanes proposed by TPE from the study's "
        "trials",
        planner=True,
        compared=False,
    ),
}
# What vmle-sweep runs (its flags give no summary and no warm start).
SEARCHES = tuple(k for k, e in STRATEGIES.items() if not e.planner and not e.needs)
COMPARED = tuple(k for k, e in STRATEGIES.items() if e.compared)  # vmle-compare's default


def strategies_help(names) -> str:
  """'name (what it does), ...' for a launcher's flag help."""
  return ", ".join(f"{name} ({STRATEGIES[name].help})" for name in names)


def build_strategy(name: str, space: SearchSpace, options: StrategyOptions) -> Strategy:
  """A registered strategy by name (a ValueError names the registered ones)."""
  if name not in STRATEGIES:
    raise ValueError(f"strategy={name!r}: not one of {', '.join(STRATEGIES)}")
  return STRATEGIES[name].build(space, options)


def make_strategy(
    name: str, space: SearchSpace, seed: int = 0, lanes: int = 8, warm_start=()
) -> Strategy:
  """A search strategy by name; TPE's random startup phase is one batch of `lanes` trials,
  and `warm_start` configs are its first proposals after the default."""
  if name not in SEARCHES:
    raise ValueError(f"strategy={name!r}: not one of {', '.join(SEARCHES)}")
  return build_strategy(
      name, space, StrategyOptions(seed=seed, lanes=lanes, warm_start=tuple(warm_start))
  )
