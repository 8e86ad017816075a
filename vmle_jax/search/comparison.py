"""A comparison: the agent, grid, random and TPE on one data set x backbone, several seeds.

Every strategy gets the same engine, lanes, budget, schedule, seeds and
early-stopping rule. Grid, random and TPE evaluate the space's default
config first; the agent starts from its playbook. TPE's random startup
phase is one batch (the lane count), so it models the results from its
second batch on. Studies are named
`cmp-<dataset>-<backbone>-<strategy>-s<seed>` and carry the group
`<dataset>-<backbone>` in their settings, which is what the report reads.
Finished studies are skipped and unfinished ones resumed, so a comparison
can run in pieces. The agent recalls only its own study (no memory of the
other seeds) unless it is given a summary; when `agent-summary` is compared,
only it gets the summary and the plain agent runs without.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import time
from typing import Callable

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.engine import distributed
from vmle_jax.engine.lanes import Engine
from vmle_jax.memory.store import Store, snapshot
from vmle_jax.search.agent import AgentStrategy
from vmle_jax.search.planners import make_planner
from vmle_jax.search.space import SearchSpace
from vmle_jax.search.strategies import COMPARED, STRATEGIES, StrategyOptions, build_strategy
from vmle_jax.search.study import StudySpec, run_study


def group_name(data, base: TrialConfig) -> str:
  name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{data.name}-{base.backbone}").strip(".-")
  return name[:100] or "data"


@dataclasses.dataclass(frozen=True)
class Comparison:
  """What a comparison runs: which strategies and seeds, under which budget and planner.

  The data, model, engine and store it runs on are `run_comparison`'s arguments. The
  strategies and seeds are checked when it is made, so a repeat cannot train a study twice.
  """

  # ---------------------------- Who competes ---------------------------------
  strategies: tuple[str, ...] = COMPARED
  seeds: tuple[int, ...] = (0, 1)
  lanes: int = 4
  # ---------------------------- The budget, per study --------------------------
  budget_trials: int | None = None
  budget_minutes: float | None = None
  budget_lane_epochs: int | None = None
  early_stop: str = "none"  # a stopping rule of search/pruning.py RULES
  # ---------------------------- The space ---------------------------------------
  dims: tuple[str, ...] | None = None  # None: each strategy's default dimensions
  fixed: dict | None = None  # values the user set, held out of every space
  # ---------------------------- The agent and the seeded starts -----------------
  planner: str = "heuristic"
  model: str | None = None
  planner_options: dict | None = None
  planner_budget_s: float | None = None
  summary: dict | None = None  # to agent-summary alone when it is compared, else to all
  tpe_warm_start: tuple = ()  # configs TPE enqueues first (tpe-warm)
  # ---------------------------- Naming ------------------------------------------
  group_tag: str = ""  # a second group on the same data and backbone (e.g. another budget)

  def __post_init__(self):
    object.__setattr__(self, "strategies", tuple(self.strategies))
    object.__setattr__(self, "seeds", tuple(self.seeds))
    object.__setattr__(self, "tpe_warm_start", tuple(self.tpe_warm_start))
    if self.dims is not None:
      object.__setattr__(self, "dims", tuple(self.dims))
    for what, values in (("strategies", self.strategies), ("seeds", self.seeds)):
      if not values or len(set(values)) < len(values):  # a repeat would train a study twice
        raise ValueError(f"{what}={list(values)}: give one or more, each once")
    unknown = [s for s in self.strategies if s not in STRATEGIES]
    if unknown:
      raise ValueError(f"strategies: {unknown} not among {', '.join(STRATEGIES)}")

  def group(self, data, base: TrialConfig) -> str:
    """The group its studies carry (and the report reads)."""
    return group_name(data, base) + (f"-{self.group_tag}" if self.group_tag else "")

  def summary_for(self, strategy: str) -> dict | None:
    """Beside agent-summary, the plain agent (and its seeded control) start without the
    summary: the comparison is of the summary."""
    if strategy == "agent-summary" or "agent-summary" not in self.strategies:
      return self.summary
    return None


def run_comparison(
    comparison: Comparison,
    data,
    base: TrialConfig,
    store: Store | None,
    engine: Engine,
    schedule: Schedule,
    workdir: str,
    deadline: float | None = None,
    log: Callable[[str], None] = print,
) -> str:
  """Runs (or resumes) every strategy x seed of `comparison`; returns the group name. Stops
  at `deadline` (a time.time() value) before starting a new study."""
  c = comparison
  group = c.group(data, base)
  plan = []
  for seed in c.seeds:
    for name in c.strategies:
      study = f"cmp-{group}-{name}-s{seed}"
      existing = store.study(study) if store else None
      if existing is None or existing["status"] != "finished":
        plan.append((seed, name, study, existing is not None))
  if distributed.multi_process():  # followers run exactly the leader's plan
    plan = [tuple(p) for p in distributed.broadcast_json(plan)]
  for seed, name, study, exists in plan:
    if deadline is not None and time.time() > deadline:
      log(f"time limit reached before {study}; rerun to continue")
      break
    entry = STRATEGIES[name]
    space_dims = c.dims or entry.default_dims(base.backbone)
    space = SearchSpace.for_backbone(
        base.backbone, base=base.replace(seed=seed), only=space_dims, fixed=c.fixed
    )
    label = entry.label(name, c.planner)
    strategy = build_strategy(
        name,
        space,
        StrategyOptions(
            seed=seed,
            lanes=c.lanes,
            warm_start=c.tpe_warm_start,
            planner=c.planner,
            model=c.model,
            planner_options=c.planner_options,
            planner_budget_s=c.planner_budget_s,
            summary=c.summary_for(name),
            recall="study",
            log=log,
        ),
    )
    spec = StudySpec(
        name=study,
        backbone=base.backbone,
        strategy=label,
        budget_trials=c.budget_trials,
        budget_minutes=c.budget_minutes,
        budget_lane_epochs=c.budget_lane_epochs,
        lanes=c.lanes,
        seed=seed,
        dims=tuple(space.names),
        group=group,
        early_stop=c.early_stop,
    )
    log(f"== {study}: {label}, seed {seed}, budget {spec.budget.describe()}, {c.lanes} lanes")
    # Each study compiles its own programs, as it would run alone: a shared cache would charge
    # every compilation to the first strategy and spare the later ones those minutes.
    engine.forget_programs()
    t0 = time.perf_counter()
    run_study(
        spec,
        data,
        store,
        strategy,
        space,
        schedule,
        engine=engine,
        resume=exists,
        workdir=os.path.join(workdir, study),
        log=log,
    )
    log(f"== {study} done in {time.perf_counter() - t0:.0f} s")
  return group


def first_divergent_batch(
    path: str, name: str, data, recall: str = "study"
) -> tuple[int | None, int]:
  """(the first stored batch of agent study `name` in the memory at `path` that the
  current heuristic planner would propose differently, given the batches before it, or
  None when it agrees with all of them; how many batches it agrees with). Each batch is
  asked on a scratch copy of the memory cut before it, the agent recalling as the study
  did (`recall`: a comparison's agent its own study, others the memory; bench/replan.py)."""
  store = Store(path, readonly=True)
  study = store.study(name)
  trials = store.finished_trials(study["id"])
  store.close()
  if any(t.batch is None for t in trials):
    raise ValueError(f"study {name!r} predates batch numbers: it cannot be cut by batch")
  batches: dict[int, set[str]] = {}
  for t in trials:
    batches.setdefault(t.batch, set()).add(TrialConfig.from_dict(t.config).canonical_json())
  settings = study["settings"]
  space = SearchSpace.for_backbone(
      study["backbone"], base=TrialConfig.from_dict(settings["base"]), only=list(settings["space"])
  )
  with tempfile.TemporaryDirectory() as tmp:
    for agreed, (number, stored) in enumerate(sorted(batches.items())):
      scratch = os.path.join(tmp, f"b{number}.sqlite")
      snapshot(path, scratch)
      store = Store(scratch)
      store.cut_study(store.study(name)["id"], number)
      agent = AgentStrategy(make_planner("heuristic"), space, recall=recall, log=lambda s: None)
      agent.bind(store, store.study(name), data)
      asked = {p.config.canonical_json() for p in agent.ask(len(stored), set())}
      store.close()
      if asked != stored:
        return number, agreed
  return None, len(batches)
