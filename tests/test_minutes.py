"""Every minute charged, every stop explained: the study loop under a budget in minutes.

The loop runs for real on the JAX-free fake engine (tests/policy_runner.py); where a test
needs lanes that cost minutes, the study's price is replaced by a dear one.
"""

import os
import time

import pytest

from vmle_jax.config import Schedule
from vmle_jax.data import make_synthetic
from vmle_jax.memory.store import Store
from vmle_jax.search import study as study_mod
from vmle_jax.search.budget import Budget, fit_to_price, spent_seconds, stop_reason
from vmle_jax.search.cost import Price
from vmle_jax.search.space import SearchSpace
from vmle_jax.search.strategies import make_strategy
from vmle_jax.search.study import StudySpec, run_study

from policy_runner import FakeEngine, seed_machine_price

SPACE = SearchSpace.for_backbone("sasrec", only=["lr", "dropout", "hidden", "max_len"])


def _run(store, name, log, trials=8, minutes=None, lanes=4, strategy="random", **resume):
  """The study on the fake engine; `resume` takes run_study's resume, overrides, started."""
  seed_machine_price(store)
  data = make_synthetic(num_users=200, num_items=60, seed=3)
  schedule = Schedule(max_epochs=3, patience=3)
  spec = StudySpec(
      name=name,
      strategy=strategy,
      budget_trials=trials,
      budget_minutes=minutes,
      lanes=lanes,
  )
  return run_study(
      spec,
      data,
      store,
      make_strategy(strategy, SPACE, seed=0, lanes=lanes),
      SPACE,
      schedule,
      engine=FakeEngine(schedule),
      log=log.append,
      engine_log=False,
      **resume,
  )


def test_a_lane_is_kept_when_its_price_fits_beside_the_lanes_before_it():
  priced = fit_to_price([60.0, 200.0, 30.0, 20.0], 100.0)
  assert priced.kept == [0, 2] and priced.dropped == [1, 3] and priced.seconds == 90.0
  # None fits: nothing, unless it is the study's first batch (its cheapest lane runs).
  assert fit_to_price([300.0, 200.0], 100.0).kept == []
  first = fit_to_price([300.0, 200.0], 100.0, at_least_one=True)
  assert first.kept == [1] and first.seconds > 100.0


def test_under_a_compute_budget_no_trial_cap_binds_unless_given():
  assert stop_reason(Budget(trials=None, minutes=5.0), [], 0.0, 0, 4) is None
  assert Budget.from_dict({"trials": None, "minutes": 5.0}).trials is None
  assert Budget.from_dict({"minutes": 5.0}).trials == 16  # stored before: its default
  assert Budget(trials=None, minutes=3.0).describe() == "3 min"


def test_every_stop_is_said_in_the_console_and_stored(tmp_path):
  store, log = Store(str(tmp_path / "m.sqlite")), []
  summary = _run(store, "cap", log, trials=8)
  assert summary["stop_reason"] == "trial budget of 8 reached"
  assert "[cap] stops: trial budget of 8 reached" in log
  assert store.study("cap")["settings"]["stop_reason"] == "trial budget of 8 reached"


def test_lanes_that_cannot_finish_in_the_minutes_left_are_not_trained(tmp_path, monkeypatch):
  # 20 s a lane-epoch, 3 epochs: a lane is priced at 60 s; 2.5 minutes hold two of them.
  monkeypatch.setattr(study_mod, "study_price", lambda *a: Price(0.0, 20.0))
  store, log = Store(str(tmp_path / "m.sqlite")), []
  _run(store, "dear", log, trials=6, minutes=2.5)
  trials = store.finished_trials(store.study("dear")["id"])
  by_batch = {}
  for t in trials:
    by_batch.setdefault(t.batch, []).append(t)
  assert all(len(b) <= 2 for b in by_batch.values())  # never more than the minutes hold
  assert all(t.proposal["batch_trials"] == len(by_batch[t.batch]) for t in trials)
  assert any("2 of 4 proposed lanes fit" in line for line in log), log


def test_a_budget_smaller_than_one_trial_says_so(tmp_path, monkeypatch):
  monkeypatch.setattr(study_mod, "study_price", lambda *a: Price(0.0, 100.0))  # 300 s a lane
  store, log = Store(str(tmp_path / "m.sqlite")), []
  _run(store, "tiny", log, trials=4, minutes=2.0)
  assert any("the budget is smaller than one trial" in line for line in log), log
  first = [t for t in store.finished_trials(store.study("tiny")["id"]) if t.batch == 1]
  assert len(first) == 1  # the cheapest lane alone, not the whole batch


def test_start_up_and_a_killed_runs_unfinished_bucket_are_charged(tmp_path):
  store, log = Store(str(tmp_path / "m.sqlite")), []
  _run(store, "killed", log, trials=4, minutes=60.0)
  sid = store.study("killed")["id"]
  # A later run dies in the middle of a bucket: its trials stay `running`, its lease stays
  # behind with the last heartbeat, 40 s after the bucket started.
  configs = [SPACE.default_config().replace(lr=1e-4 * (i + 1)) for i in range(2)]
  store.start_bucket(sid, configs, [{"batch": 9, "planner_seconds": 1.5}] * 2)
  store.conn.execute("UPDATE trials SET created_at = ? WHERE status = 'running'", (1000.0,))
  store.conn.execute(
      "INSERT INTO leases (study_id, owner, host, pid, heartbeat, acquired_at) "
      "VALUES (?, 'dead', ?, 999999999, 1040.0, 1000.0)",
      (sid, os.uname().nodename),
  )
  store.conn.commit()
  before = spent_seconds(store.study(sid), store.finished_trials(sid))
  started = time.perf_counter() - 5.0  # the launcher spent 5 s loading before the loop
  _run(
      store,
      "killed",
      log,
      trials=6,
      minutes=60.0,
      resume=True,
      overrides=("budget",),
      started=started,
  )
  charges = store.study(sid)["settings"]["charges"]
  killed = [c for c in charges if "killed" in c["what"]]
  assert len(killed) == 1 and killed[0]["seconds"] == pytest.approx(41.5)
  start_up = [c for c in charges if c["what"] == "start-up"]
  assert start_up and start_up[-1]["seconds"] >= 5.0
  after = spent_seconds(store.study(sid), store.finished_trials(sid))
  assert after >= before + 41.5 + 5.0


def test_with_priced_lanes_the_mean_trial_does_not_stop_the_study():
  from vmle_jax.memory.records import Trial
  from vmle_jax.search.budget import next_batch_size

  # One batch of four 5-epoch lanes took 400 s: the mean trial costs 100 s.
  done = [
      Trial(i, 1, i, {}, "s", "finished", bucket=0, batch=1, epochs=5, bucket_seconds=400.0)
      for i in range(4)
  ]
  budget = Budget(trials=None, minutes=8.0)  # 80 s left after 400 s
  assert next_batch_size(budget, done, 400.0, 0, 4)[0] == 0  # by the mean: nothing fits
  # Priced lane by lane, the loop asks for the batch and keeps what fits (a cheap lane may).
  assert next_batch_size(budget, done, 400.0, 0, 4, priced=True) == (4, None)
  assert next_batch_size(budget, done, 481.0, 0, 4, priced=True)[0] == 0  # the time is up
