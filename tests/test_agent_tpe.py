"""agent-tpe: the agent with half of every later batch's lanes proposed by TPE.

On the JAX-free study loop (policy_runner.py): the first batch is the agent's
playbook batch, untouched; every later batch gives TPE its share of lanes,
proposed from the study's finished trials (a killed study completes its batch
with TPE's share), marked as TPE's in the memory and never as a fallback.
"""

import pytest

from vmle_jax.config import Schedule
from vmle_jax.memory.store import Store
from vmle_jax.search.agent import TPE_LANE, AgentStrategy, tpe_lanes
from vmle_jax.search.planners import HeuristicPlanner
from vmle_jax.search.strategies import (
    AGENT_TPE_SHARE,
    STRATEGIES,
    StrategyOptions,
    build_strategy,
    tpe_after,
)

# The seeded control's runner on the fake engine: the same space, lanes and kill.
from test_tpe_playbook import LANES, _configs, _Killed, _space, _study


def _agent_tpe():
  return build_strategy("agent-tpe", _space(), StrategyOptions(seed=0, log=lambda s: None))


def test_lanes_share():
  assert tpe_lanes(AGENT_TPE_SHARE, 4, scored=False) == 0  # the playbook's batch
  assert [tpe_lanes(AGENT_TPE_SHARE, n, True) for n in (1, 2, 4, 8, 16)] == [0, 1, 2, 4, 8]
  assert tpe_lanes(0.0, 8, True) == 0
  assert tpe_lanes(0.25, 4, True) == 1 and tpe_lanes(0.9, 4, True) == 3  # the planner keeps one
  with pytest.raises(ValueError, match="tpe_share"):
    AgentStrategy(HeuristicPlanner(), _space(), tpe_share=1.0)


def test_first_batch_is_the_agents_and_later_batches_give_tpe_a_lane(tmp_path):
  store = Store(str(tmp_path / "m.sqlite"))
  plain = AgentStrategy(HeuristicPlanner(), _space(), recall="study", log=lambda s: None)
  agent = _study(plain, store, "agent", 3 * LANES)
  mixed = _study(_agent_tpe(), store, "mixed", 3 * LANES)
  assert len(mixed) == 3 and all(len(b) == LANES for b in mixed)
  assert _configs(mixed[0]) == _configs(agent[0])
  assert TPE_LANE not in {t.proposal["planner"] for t in mixed[0]}
  for batch in mixed[1:]:
    tpe = [t for t in batch if t.proposal["planner"] == TPE_LANE]
    assert len(tpe) == tpe_lanes(AGENT_TPE_SHARE, LANES, True)
    assert tpe[0].proposal["kind"] == "tpe" and tpe[0].proposal["fallback"] is False
    assert "TPE's proposal from this study's" in tpe[0].proposal["hypothesis"]
    assert {t.proposal["planner"] for t in batch if t not in tpe} == {"heuristic"}
  assert _configs(mixed[1]) != _configs(agent[1])


def _sources(batch) -> list[str]:
  return sorted(t.proposal["planner"] for t in batch)


def test_a_killed_study_keeps_its_trials_and_the_share_of_the_batch_it_completes(tmp_path):
  """Killed in the second batch's last bucket (a TPE lane), the resumed study completes that
  batch with a TPE lane, so every batch holds TPE's share as in an uninterrupted run."""
  store = Store(str(tmp_path / "m.sqlite"))
  full = _study(_agent_tpe(), store, "full", 3 * LANES)
  killed = _Killed(Schedule(max_epochs=3, patience=3))
  killed.die_at = len({t.bucket for b in full[:2] for t in b})  # the second batch's last bucket
  with pytest.raises(KeyboardInterrupt):
    _study(_agent_tpe(), store, "cut", 3 * LANES, engine=killed)
  before = _configs([t for t in store.finished_trials(store.study("cut")["id"])])
  assert _sources([t for t in store.finished_trials(store.study("cut")["id"]) if t.batch == 2]) == [
      "heuristic",
      "heuristic",
      TPE_LANE,
  ]
  resumed = _study(_agent_tpe(), store, "cut", 3 * LANES, resume=True)
  assert set(before) <= set(_configs([t for b in resumed for t in b]))
  assert [_sources(b) for b in resumed] == [_sources(b) for b in full]
  assert _configs(resumed[0]) == _configs(full[0])


def test_tpe_is_shown_the_studys_trials_and_skips_what_the_space_cannot_hold():
  space = _space()
  good = space.default_config().to_dict()
  outside = {**good, "hidden": 7}  # not one of the space's widths
  trials = [
      {"config": good, "value": 0.1},
      {"config": {**good, "lr": 0.003}, "value": None},
      {"config": outside, "value": 0.2},
  ]
  tpe, skipped = tpe_after(space, trials, seed=0)
  assert skipped == 1
  states = [t.state.name for t in tpe.study.trials]
  assert states == ["COMPLETE", "FAIL"]
  first = [p.config.canonical_json() for p in tpe.ask(2, set())]
  again = [p.config.canonical_json() for p in tpe_after(space, trials, seed=0)[0].ask(2, set())]
  assert first == again  # the same trials and seed give the same proposals


def test_the_launchers_offer_it():
  entry = STRATEGIES["agent-tpe"]
  assert entry.planner and not entry.compared  # named in --strategies, not a default arm
  assert entry.label("agent-tpe") == "agent-tpe:heuristic"
