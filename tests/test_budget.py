"""Budgets in compute (minutes, lane-epochs), the cost model, and the guarded stopping rule."""

import json
import sqlite3

import numpy as np
import pytest

from vmle_jax.config import TrialConfig
from vmle_jax.memory.records import Trial
from vmle_jax.search.budget import (
    Budget,
    estimate_batch,
    next_batch_size,
    stop_reason,
    trials_left,
)
from vmle_jax.search.cost import (
    lane_epoch_flops,
    relative_cost,
    measured_price,
)
from vmle_jax.search.pruning import MedianRule, make_pruner

from launcher import TINY_ARGS, run_launcher


def _batch(batch: int, bucket_seconds: float, epochs=(4, 4, 4, 4), planner: float = 0.0):
  return [
      Trial(
          id=10 * batch + i,
          study_id=1,
          number=10 * batch + i,
          config={},
          signature="s",
          status="finished",
          bucket=batch,
          batch=batch,
          valid={"NDCG@10": 0.1},
          epochs=e,
          bucket_seconds=bucket_seconds,
          planner_seconds=planner,
      )
      for i, e in enumerate(epochs)
  ]


def test_a_minutes_budget_stops_before_a_batch_that_cannot_fit():
  trials = _batch(1, bucket_seconds=120.0)  # 16 lane-epochs in 120 s: 7.5 s per lane-epoch
  est = estimate_batch(trials, 4)
  assert est.seconds_per_lane_epoch == pytest.approx(7.5) and est.seconds == pytest.approx(120)
  # 120 s spent, the next batch takes about 120 s: it fits 5 minutes, not 3.
  assert stop_reason(Budget(trials=64, minutes=5), trials, 120.0, 0, 4) is None
  reason = stop_reason(Budget(trials=64, minutes=3), trials, 120.0, 0, 4)
  assert reason.startswith("the next batch of 4 would not fit the time budget")
  assert "7.5 s per lane-epoch" in reason
  assert "time budget of 3 min reached" == stop_reason(Budget(64, minutes=3), trials, 181.0, 0, 4)
  # 30 s per trial: 180 s left of 5 minutes hold 6 trials, 600 s of 12 minutes 20.
  assert trials_left(Budget(trials=64, minutes=5), trials, 4) == 6
  assert trials_left(Budget(trials=64, minutes=12), trials, 4) == 20
  # A batch that would overrun is cut to the trials that fit; none fit: the study stops.
  assert next_batch_size(Budget(trials=64, minutes=3.5), trials, 120.0, 0, 4) == (3, None)
  assert next_batch_size(Budget(trials=64, minutes=5), trials, 120.0, 0, 4) == (4, None)
  size, why = next_batch_size(Budget(trials=64, minutes=2.4), trials, 120.0, 0, 4)
  assert size == 0 and why.startswith("the next batch of 1 would not fit")
  assert trials_left(Budget(trials=6), trials, 4) == 2  # a trial budget: the count alone
  # Before anything is measured there is no estimate: the first batch always runs.
  assert stop_reason(Budget(trials=64, minutes=0.1), [], 0.0, 0, 4) is None


def test_a_lane_epoch_budget_counts_what_pruned_lanes_actually_trained():
  trials = _batch(1, 60.0, epochs=(4, 1, 2, 1))  # 8 lane-epochs, 2 per trial
  assert stop_reason(Budget(trials=64, lane_epochs=16), trials, 60.0, 0, 4) is None
  reason = stop_reason(Budget(trials=64, lane_epochs=15), trials, 60.0, 0, 4)
  assert reason.startswith("the next batch of 4 would not fit the lane-epoch budget")
  assert stop_reason(Budget(trials=4, lane_epochs=99), trials, 60.0, 0, 4).startswith("trial")


def test_a_study_stored_before_lane_epoch_budgets_resumes_without_a_setting_change():
  from vmle_jax.config import Schedule
  from vmle_jax.search.space import SearchSpace
  from vmle_jax.search.study import StudySpec, setting_changes, study_settings

  space = SearchSpace.for_backbone("sasrec", only=["lr"])
  spec = StudySpec(name="s", budget_trials=16)
  budget, settings = study_settings(spec, space, Schedule())
  stored = {  # as a study created before lane-epoch budgets stored itself
      "dataset_id": 1,
      "strategy": spec.strategy,
      "budget": {"trials": 16, "minutes": None, "tokens": None},
      "settings": dict(settings),
  }
  assert setting_changes(stored, spec, budget, settings, 1) == {}
  wider = StudySpec(name="s", budget_trials=16, budget_lane_epochs=40)
  budget, settings = study_settings(wider, space, Schedule())
  assert "budget" in setting_changes(stored, wider, budget, settings, 1)
  assert Budget(16, lane_epochs=40).describe() == "16 trials / 40 lane-epochs"


def test_a_resumed_batch_is_completed_to_its_recorded_size_within_the_lowered_lanes(tmp_path):
  from vmle_jax.memory.store import Store
  from vmle_jax.search.study import StudySpec, _next_batch

  store = Store(str(tmp_path / "m.sqlite"))
  did = store.upsert_dataset({"name": "d", "sha256": "x", "users": 3})
  sid = store.create_study("s", did, "sasrec", "random", {"trials": 64}, {"seed": 0})

  def batch(number, asked, finished):
    notes = [{"proposal": {"batch_trials": asked}, "batch": number, "planner_seconds": 0.0}]
    for i in range(finished):
      (tid,), _ = store.start_bucket(sid, [TrialConfig(lr=1e-3 * (number + i / 10))], notes)
      store.finish_bucket([(tid, {"status": "finished", "valid": {"NDCG@10": 0.1}})])

  batch(1, 8, 8)
  batch(2, 2, 2)  # a last batch cut to 2: complete, the next batch gets its own number
  spec = StudySpec(name="s", budget_trials=64, lanes=8)
  assert _next_batch(spec, store, sid, 10) == (3, 8)
  batch(3, 8, 3)  # a kill cut batch 3 after 3 of its 8 trials: 5 are still owed ...
  assert _next_batch(spec, store, sid, 13) == (3, 5)
  lowered = StudySpec(name="s", budget_trials=64, lanes=4)  # ... but lanes were lowered
  assert _next_batch(lowered, store, sid, 13) == (3, 4)


def test_the_sweep_cuts_its_last_batch_to_the_lane_epochs_left_then_stops(tmp_path):
  # Two lanes per batch, 3 epochs each without stopping: 6 lane-epochs a batch; of 10, the 4
  # left after the first batch hold one more trial, and then nothing fits.
  out = run_launcher(
      tmp_path,
      "sweep",
      ["--strategy=random", "--dims=lr,dropout", *TINY_ARGS, "--budget_lane_epochs=10"],
      "s",
  )
  assert out.returncode == 0, out.stdout + out.stderr
  assert "1 of 2 trials fit what is left of the budget: a last batch" in out.stdout
  assert "3/8 trials" in out.stdout and "4/8 trials" not in out.stdout
  assert "would not fit the lane-epoch budget" in out.stdout
  conn = sqlite3.connect(str(tmp_path / "m.sqlite"))
  rows = conn.execute("SELECT batch, proposal FROM trials ORDER BY id").fetchall()
  # The cut batch is a batch of its own, recorded as asked for one trial, so the loop does
  # not take it for a batch a kill cut short and fill it up.
  assert [b for b, _ in rows] == [1, 1, 2]
  assert [json.loads(p)["batch_trials"] for _, p in rows] == [2, 2, 1]


def test_a_wide_long_window_proposal_costs_more_than_a_narrow_one():
  stats = {"users": 943, "items": 1682}
  narrow = TrialConfig(hidden=64, max_len=50, loss="sampled_softmax").to_dict()
  wide = TrialConfig(hidden=256, max_len=200, loss="softmax").to_dict()
  assert lane_epoch_flops(wide, stats) > 10 * lane_epoch_flops(narrow, stats)
  assert relative_cost(wide, narrow, stats) > 2.0 > 1.0 > relative_cost(narrow, wide, stats)
  for field, small, large in (("hidden", 64, 128), ("max_len", 50, 200), ("blocks", 1, 3)):
    a = TrialConfig(**{field: small}).to_dict()
    b = TrialConfig(**{field: large}).to_dict()
    assert relative_cost(b, a, stats) > 1.0, field
  # The full softmax costs more than sampled negatives when the catalogue is the larger.
  full = TrialConfig(loss="softmax").to_dict()
  assert relative_cost(full, narrow, {"users": 1000, "items": 20000}) > 1.0


def test_a_study_fits_its_own_price_and_prices_an_untried_structure():
  stats = {"users": 943, "items": 1682}
  narrow = TrialConfig(hidden=64, max_len=50).to_dict()
  wide = TrialConfig(hidden=256, max_len=200, loss="softmax").to_dict()
  middle = TrialConfig(hidden=128, max_len=100, loss="softmax").to_dict()
  work = lambda cfg: lane_epoch_flops(cfg, stats) / 1e12
  truth = lambda cfg: 3.0 + 20.0 * work(cfg)  # this machine: 3 s fixed + 20 s per TFLOP
  bucket = (
      lambda b, cfg, epochs, lanes: [
          {
              "config": cfg,
              "epochs": epochs,
              "bucket": b,
              "bucket_seconds": truth(cfg) * epochs * lanes,
          }
      ]
      * lanes
  )
  trials = bucket(0, narrow, 8, 2) + bucket(1, wide, 4, 2)
  trials.append({"config": wide, "epochs": 0, "bucket": 2, "bucket_seconds": 99.0})  # untrained
  price = measured_price(trials, stats)
  assert price.seconds_per_lane_epoch == pytest.approx(3.0)
  assert price.seconds_per_tflop == pytest.approx(20.0)
  assert price.batch_seconds([middle] * 4, stats, 8) == pytest.approx(4 * 8 * truth(middle))
  # One structure measured: the split between work and fixed time is the prior's.
  one = measured_price(bucket(0, narrow, 8, 2), stats)
  assert one.seconds(narrow, stats) == pytest.approx(truth(narrow))
  ratio = one.seconds(wide, stats) / one.seconds(narrow, stats)
  assert ratio == pytest.approx(relative_cost(wide, narrow, stats))
  assert measured_price(trials[-1:], stats) is None
  # Two structures of nearly the same work: noise would set the slope, so the prior splits.
  close = TrialConfig(hidden=64, max_len=56).to_dict()
  assert 1.0 < work(close) / work(narrow) < 1.3
  noisy = bucket(0, narrow, 8, 2) + [
      {**t, "bucket_seconds": t["bucket_seconds"] * 1.25} for t in bucket(1, close, 8, 2)
  ]
  near = measured_price(noisy, stats)
  assert near.seconds(wide, stats) / near.seconds(narrow, stats) == pytest.approx(
      relative_cost(wide, narrow, stats), rel=0.2
  )
  # Seconds that fall below the work line's origin: no negative fixed time, the line is
  # drawn through zero.
  steep = lambda cfg: 20.0 * (work(cfg) - work(narrow) / 2)
  low = [
      {**t, "bucket_seconds": steep(t["config"]) * 8 * 2}
      for t in bucket(0, narrow, 8, 2) + bucket(1, wide, 8, 2)
  ]
  origin = measured_price(low, stats)
  assert origin.seconds_per_lane_epoch == 0.0 and origin.seconds_per_tflop > 0


def _curve(values):
  return [{"epoch": i + 1, "NDCG@10": v} for i, v in enumerate(values)]


def test_the_guarded_rule_keeps_lanes_on_the_leaders_track_and_cuts_the_far_behind():
  # The study's best finished trial (0.30) was a slow starter: 0.02 at epoch 2.
  fast = [_curve([0.10, 0.20, 0.22]), _curve([0.10, 0.18, 0.20]), _curve([0.09, 0.16, 0.18])]
  slow_leader = _curve([0.01, 0.02, 0.30])
  curves = fast + [slow_leader]
  plain = MedianRule(grace_epochs=2, min_trials=4)
  guarded = MedianRule(grace_epochs=2, min_trials=4, far=0.5, leader_curve=tuple(slow_leader))
  alive = np.ones(3, bool)
  # At epoch 2 the references are 0.20, 0.18, 0.16, 0.02 (median 0.17). Lane 0 (0.05) is
  # behind the median but ahead of where the study's best was: the plain rule stops it.
  best = np.array([0.05, 0.19, 0.01])
  assert plain.stop(2, best, alive, curves).tolist() == [True, False, True]
  assert guarded.stop(2, best, alive, curves).tolist() == [False, False, True]
  # At epoch 1 (inside the grace period) only a lane below half the median is cut, unless
  # it is on the best's track. References at epoch 1: 0.10, 0.10, 0.09, 0.01 (median 0.095).
  early = np.array([0.04, 0.06, 0.2])
  assert not plain.stop(1, early, alive, curves).any()
  assert guarded.stop(1, early, alive, curves).tolist() == [False, False, False]  # >= 0.01
  fast_leader = MedianRule(grace_epochs=2, min_trials=4, far=0.5, leader_curve=tuple(fast[0]))
  assert fast_leader.stop(1, early, alive, curves).tolist() == [True, False, False]


@pytest.mark.parametrize("rule", ["median", "median-guarded"])
def test_no_rule_ever_stops_the_lane_that_leads(rule):
  rng = np.random.default_rng(0)
  finished = []
  for i in range(6):
    values = np.cumsum(rng.uniform(0.0, 0.05, 6))
    finished.append(
        Trial(
            id=i,
            study_id=1,
            number=i,
            config={},
            signature="s",
            status="finished",
            valid={"NDCG@10": float(values.max())},
            curve=_curve(values.tolist()),
        )
    )
  prune = make_pruner(rule, finished, grace_epochs=1)
  for epoch in range(1, 6):
    refs = [max(v["NDCG@10"] for v in t.curve if v["epoch"] <= epoch) for t in finished]
    lanes = rng.uniform(0.0, max(refs) * 1.2, 8)
    lanes[0] = max(refs)  # level with the best reference: it leads
    lanes[1] = max(refs) * 1.1
    alive = np.ones(8, bool)
    cut = prune(epoch, lanes, alive)
    assert not cut[0] and not cut[1], (rule, epoch)
    assert not cut[lanes >= max(refs)].any()
