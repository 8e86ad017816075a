"""tpe-playbook, the seeded control: TPE whose first batch is the agent's playbook batch.

On the JAX-free study loop (policy_runner.py): its first batch is the agent's
first batch on the same study (also under a minutes budget, which shapes the
playbook), its second comes from TPE, a study killed mid-batch resumes to the
proposals of an uninterrupted one, and the launchers accept its name.
"""

import subprocess
import sys

import pytest

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data import make_synthetic
from vmle_jax.memory.store import Store
from vmle_jax.search import strategies
from vmle_jax.search.agent import AgentStrategy
from vmle_jax.search.planners import HeuristicPlanner
from vmle_jax.search.seeded import PLAYBOOK_SOURCE, TPE_SOURCE, PlaybookTPEStrategy
from vmle_jax.search.space import SearchSpace
from vmle_jax.search.strategies import StrategyOptions, build_strategy
from vmle_jax.search.study import StudySpec, run_study

from policy_runner import FakeEngine, fake_study, seed_machine_price

LANES = 4
TINY = {"hidden": 16, "blocks": 1, "max_len": 10, "num_negatives": 16}


def _space() -> SearchSpace:
  return SearchSpace.for_backbone("sasrec", base=TrialConfig().replace(**TINY))


def _study(
    strategy,
    store: Store,
    name: str,
    trials: int,
    minutes: float | None = None,
    engine: FakeEngine | None = None,
    resume: bool = False,
) -> list[list]:
  """Runs `strategy` on the fake engine; returns the finished trials batch by batch."""
  if minutes is not None:
    seed_machine_price(store)
  schedule = Schedule(max_epochs=3, patience=3)
  spec = StudySpec(
      name=name,
      backbone="sasrec",
      strategy=getattr(strategy, "name", "fake"),
      budget_trials=trials,
      budget_minutes=minutes,
      lanes=LANES,
  )
  run_study(
      spec,
      make_synthetic(num_users=200, num_items=60, seed=3),
      store,
      strategy,
      _space(),
      schedule,
      engine=engine or FakeEngine(schedule),
      resume=resume,
      log=lambda s: None,
      engine_log=False,
  )
  return _study_batches(store, name)


def _study_batches(store: Store, name: str) -> list[list]:
  """A study's finished trials, batch by batch."""
  batches: dict[int, list] = {}
  for t in store.finished_trials(store.study(name)["id"]):
    batches.setdefault(t.batch, []).append(t)
  return [batches[b] for b in sorted(batches)]


def _configs(batch) -> list[str]:
  return sorted(TrialConfig.from_dict(t.config).canonical_json() for t in batch)


def _playbook_tpe(**options) -> PlaybookTPEStrategy:
  """Built through the registry the launchers and the comparison read."""
  o = StrategyOptions(seed=0, lanes=LANES, log=lambda s: None, **options)
  return build_strategy("tpe-playbook", _space(), o)


def _agent() -> AgentStrategy:
  return AgentStrategy(HeuristicPlanner(), _space(), recall="study", log=lambda s: None)


@pytest.mark.parametrize("minutes", [None, 20.0])
def test_its_first_batch_is_the_agents_and_its_second_is_tpes(tmp_path, minutes):
  store = Store(str(tmp_path / "m.sqlite"))
  agent = _study(_agent(), store, "agent", 2 * LANES, minutes)
  seeded = _study(_playbook_tpe(), store, "seeded", 2 * LANES, minutes)
  assert len(seeded) == 2 and all(len(b) == LANES for b in seeded)
  assert _configs(seeded[0]) == _configs(agent[0])  # the agent's playbook batch, exactly
  default = _space().default_config().canonical_json()
  assert default not in _configs(seeded[0])  # not enqueued in front of it
  assert {t.proposal["source"] for t in seeded[0]} == {PLAYBOOK_SOURCE}
  assert {t.proposal["playbook_kind"] for t in seeded[0]} == {t.proposal["kind"] for t in agent[0]}
  # Then TPE: its own proposals (its model from this batch on), not the planner's moves.
  assert {t.proposal["source"] for t in seeded[1]} == {TPE_SOURCE}
  assert all(t.proposal["strategy"] == "tpe-playbook" for b in seeded for t in b)
  assert sorted(t.proposal["optuna_trial"] for t in seeded[1]) == list(range(LANES, 2 * LANES))
  assert _configs(seeded[1]) != _configs(agent[1])
  # The playbook was read, not run as an agent: nothing is logged as a planner call.
  assert not store.llm_calls(store.study("seeded")["id"])


def test_a_short_playbook_batch_is_filled_by_tpe_starting_from_the_default(tmp_path, monkeypatch):
  from vmle_jax.search import seeded

  full = seeded.playbook_batch
  monkeypatch.setattr(seeded, "playbook_batch", lambda *a: full(*a)[:2])
  batches = _study(_playbook_tpe(), Store(str(tmp_path / "m.sqlite")), "short", LANES)
  sources = [t.proposal["source"] for t in batches[0]]
  assert sorted(sources) == sorted([PLAYBOOK_SOURCE] * 2 + [TPE_SOURCE] * 2)
  default = _space().default_config().canonical_json()
  assert default in _configs(batches[0])


class _Killed(FakeEngine):
  """Dies (as a kill would end the process) when asked to train bucket `die_at`."""

  die_at: int = 0

  def train(self, configs, label="", checkpoint_dir=None, prune=None):
    if self.buckets + 1 == self.die_at:
      raise KeyboardInterrupt
    return super().train(configs, label, checkpoint_dir, prune)


def test_a_study_killed_mid_batch_resumes_to_the_uninterrupted_proposals(tmp_path):
  store = Store(str(tmp_path / "m.sqlite"))
  full = _study(_playbook_tpe(), store, "full", 3 * LANES)
  schedule = Schedule(max_epochs=3, patience=3)
  killed = _Killed(schedule)
  # The playbook's batch is one bucket; TPE's second batch has a bucket per structure.
  killed.die_at = 3
  with pytest.raises(KeyboardInterrupt):
    _study(_playbook_tpe(), store, "cut", 3 * LANES, engine=killed)
  kept = _study_batches(store, "cut")
  assert len(kept) == 2 and 0 < len(kept[1]) < LANES  # killed inside the second batch
  resumed = _study(_playbook_tpe(), store, "cut", 3 * LANES, resume=True)
  assert [_configs(b) for b in resumed] == [_configs(b) for b in full]
  assert [sorted(t.proposal["source"] for t in b) for b in resumed] == [
      sorted(t.proposal["source"] for t in b) for b in full
  ]


@pytest.mark.parametrize(
    "backbone,dim",
    [("sasrec", "hidden"), ("sasrec", "loss"), ("sasrec", "lr"), ("hstu", "max_len")],
)
def test_a_pinned_dimension_is_kept_by_the_playbook_and_by_tpe(tmp_path, backbone, dim):
  """Dimensions the playbook moves, pinned (test_pinning.py runs every dimension for the
  other strategies; every one passes for this one too)."""
  from test_pinning import pin_value

  value = pin_value(backbone, dim)
  base = TrialConfig(backbone=backbone).replace(**TINY)
  space = SearchSpace.for_backbone(backbone, base=base, fixed={dim: value})
  seeded = build_strategy("tpe-playbook", space, StrategyOptions(lanes=LANES, log=lambda s: None))
  trials = fake_study(seeded, space, Store(str(tmp_path / "m.sqlite")), trials=3 * LANES)
  assert len(trials) == 3 * LANES and all(t.config[dim] == value for t in trials)
  assert [t.proposal["source"] for t in trials].count(PLAYBOOK_SOURCE) == LANES


def test_asking_before_the_study_exists_names_the_fix():
  with pytest.raises(RuntimeError, match="bind it to the study"):
    _playbook_tpe().ask(LANES, set())


def test_the_launchers_accept_it():
  assert "tpe-playbook" in strategies.SEARCHES and "tpe-playbook" in strategies.COMPARED
  assert "tpe-playbook (tpe whose first batch" in strategies.strategies_help(strategies.SEARCHES)
  code = (
      "import sys; from absl import flags; from vmle_jax.launch import {0}; "
      "flags.FLAGS(['x', '{1}']); print(flags.FLAGS.{2})"
  )
  for module, flag, name in (
      ("sweep", "--strategy=tpe-playbook", "strategy"),
      ("compare", "--strategies=agent,tpe-playbook", "strategies"),
  ):
    out = subprocess.run(
        [sys.executable, "-c", code.format(module, flag, name)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "tpe-playbook" in out.stdout, out.stderr[-2000:]
