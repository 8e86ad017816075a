"""A study loop without JAX, for testing search policies (vizier's `test_runners` idea).

`FakeEngine` stands in for `vmle_jax.engine.Engine` in `run_study`: every
lane "trains" instantly and its validation curve rises towards a value that
an objective computes from the configuration. The real study loop, memory,
budget accounting and strategy then run as they do in production, so a
policy (the agent's planner, TPE, random, grid) is tested on what it
proposes over several batches, in milliseconds instead of minutes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data import make_synthetic
from vmle_jax.engine.lanes import BucketResult, LaneResult
from vmle_jax.memory.store import Store
from vmle_jax.search.space import SearchSpace
from vmle_jax.search.study import StudySpec, run_study


def smooth_objective(cfg: TrialConfig) -> float:
  """A deterministic landscape with an optimum inside the space: lr near 2e-3, dropout near
  0.3, a mid-sized model; every configuration scores in (0, 0.2)."""
  score = 0.15
  score -= 0.02 * abs(math.log10(cfg.lr / 2e-3))
  score -= 0.05 * abs(cfg.dropout - 0.3)
  score -= 0.01 * abs(math.log2(cfg.hidden / 64))
  score -= 0.005 * abs(cfg.blocks - 2)
  score += 0.01 if cfg.loss == "softmax" else 0.0
  return max(score, 0.001)


@dataclasses.dataclass
class FakeEngine:
  """Trains nothing: a lane's validation NDCG@10 climbs to `objective(config)` over the
  schedule's epochs (still rising at the cap, as short CPU studies are)."""

  schedule: Schedule
  objective: Callable[[TrialConfig], float] = smooth_objective
  buckets: int = 0
  in_series: bool = False  # lanes "train" together, as vmapped lanes do

  def train(self, configs, label: str = "", checkpoint_dir=None, prune=None) -> BucketResult:
    del label, checkpoint_dir, prune  # every lane runs to the cap
    self.buckets += 1
    epochs = self.schedule.max_epochs
    lanes = []
    for cfg in configs:
      top = self.objective(cfg)
      curve = [
          {"epoch": e, "loss": 5.0 / e, "NDCG@10": top * e / epochs, "HR@10": 2 * top * e / epochs}
          for e in range(1, epochs + 1)
      ]
      lanes.append(
          LaneResult(
              cfg,
              status="finished",
              epochs=epochs,
              best_epoch=epochs,
              valid={"NDCG@10": top, "HR@10": 2 * top},
              curve=curve,
          )
      )
    return BucketResult(configs[0], lanes, None, 0.01, 10, 0.0)

  def lane_params(self, result: BucketResult, lane: int) -> dict:
    """A stand-in for a lane's trained parameters (what a study saves for its best)."""
    del result
    return {"lane": np.full((1,), lane, np.float32)}

  # What a study's test evaluation of its best saved lane calls (study._test_metrics): the
  # lanes are "sharded" as they are, and every test user ranks its item first.
  def padded_lanes(self, n: int) -> int:
    return n

  def shard_lanes(self, tree):
    return tree

  def lane_ranks(self, signature, params, split: str) -> np.ndarray:
    del signature, params, split
    return np.ones((1, 10), np.int32)

  def forget_programs(self) -> None:
    """Nothing compiled, nothing to forget (a comparison asks before each study)."""

  def evaluate(self, result: BucketResult, split: str) -> list[dict]:
    del split
    return [dict(lane.valid) for lane in result.lanes]


def fake_study(
    strategy,
    space: SearchSpace,
    store: Store,
    name: str = "fake",
    trials: int = 8,
    lanes: int = 4,
    epochs: int = 3,
    data=None,
    objective: Callable[[TrialConfig], float] = smooth_objective,
) -> list:
  """Runs `strategy` for `trials` trials in batches of `lanes` on the fake engine; returns
  the study's finished trials (memory/records.Trial)."""
  data = data or make_synthetic(num_users=200, num_items=60, seed=3)
  schedule = Schedule(max_epochs=epochs, patience=epochs)
  spec = StudySpec(
      name=name,
      backbone=space.backbone,
      strategy=getattr(strategy, "name", "fake"),
      budget_trials=trials,
      lanes=lanes,
  )
  run_study(
      spec,
      data,
      store,
      strategy,
      space,
      schedule,
      engine=FakeEngine(schedule, objective),
      log=lambda s: None,
      engine_log=False,
  )
  return store.finished_trials(store.study(name)["id"])


def seed_machine_price(store: Store, price=None) -> None:
  """Stores a price of this machine in `store`, as a probe would (search/probe.py), so a
  study under minutes prices its first batch without probing (seconds of real training)."""
  from vmle_jax.search.cost import Price
  from vmle_jax.search.probe import machine_identity

  price = price or Price(seconds_per_tflop=25.0, seconds_per_lane_epoch=0.13)
  machine, device = machine_identity()
  store.put_machine_price(machine, device, "float32", price.to_dict(), {"seeded": True}, 0.0)
