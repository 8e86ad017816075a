"""Strategies and early-stopping rules are registries: every launcher and bench/ script reads
their keys, so a new strategy or rule is one entry plus its code."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data import make_synthetic
from vmle_jax.engine import Engine
from vmle_jax.memory.records import Trial
from vmle_jax.memory.store import Store
from vmle_jax.search import pruning, strategies
from vmle_jax.search.comparison import Comparison, run_comparison
from vmle_jax.search.strategies import STRATEGIES, Strategy, StrategyEntry, _add_new

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _helpfull(*cmd) -> str:
  out = subprocess.run(
      [sys.executable, *cmd, "--helpfull"], cwd=REPO, capture_output=True, text=True, timeout=120
  )
  assert "--helpfull" in out.stdout, out.stderr[-2000:]  # absl exits 1 after the help
  return " ".join(out.stdout.split())


def test_the_launchers_and_the_experiment_offer_the_registered_names():
  rules = "<" + "|".join(pruning.RULES) + ">"
  searches = "<" + "|".join(strategies.SEARCHES) + ">"
  sweep = _helpfull("-m", "vmle_jax.launch.sweep")
  assert f"--strategy: {searches}" in sweep and f"--early_stop: {rules}" in sweep
  assert "agent" not in searches  # the agent runs under vmle-tune and vmle-compare
  compare = _helpfull("-m", "vmle_jax.launch.compare")
  assert f"(default: '{','.join(strategies.COMPARED)}')" in compare
  # Each with its help line, but tpe-warm, whose warm start only bench/transfer.py gives.
  offered = [name for name, e in STRATEGIES.items() if e.needs != "warm_start"]
  assert all(f"{name} (" in compare for name in offered) and "tpe-warm (" not in compare
  experiment = _helpfull(os.path.join("bench", "experiment.py"))
  assert f"--early_stop: {rules}" in experiment
  groups = subprocess.run(
      [
          sys.executable,
          "-c",
          "import json, sys; sys.path.insert(0, 'bench'); import experiment as e; "
          "print(json.dumps(sorted({s for gs in (*e.SCALES.values(), *e.EQUAL_MINUTES.values()) "
          "for g in gs for s in g.strategies})))",
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert set(json.loads(groups.stdout)) <= set(STRATEGIES), groups.stderr[-2000:]


class _DefaultOnly(Strategy):
  """A strategy that proposes the space's default config once."""

  name = "default-only"

  def __init__(self, space):
    self.space = space

  def ask(self, n, done):
    out = []
    _add_new(out, done, self.space.default_config(), self.name)
    return out[:n]


def test_a_new_strategy_is_one_registry_entry(tmp_path, monkeypatch):
  monkeypatch.setitem(
      STRATEGIES,
      "default-only",
      StrategyEntry(lambda space, o: _DefaultOnly(space), "the default config", compared=False),
  )
  data = make_synthetic(num_users=120, num_items=40, seed=0)
  schedule = Schedule(max_epochs=1, patience=1)
  store = Store(str(tmp_path / "m.sqlite"))
  group = run_comparison(
      Comparison(strategies=("default-only",), seeds=(0,), lanes=1, budget_trials=1),
      data,
      TrialConfig(hidden=16, blocks=1, max_len=10, num_negatives=16),
      store,
      Engine(data, schedule, log=None),
      schedule,
      str(tmp_path / "w"),
      log=lambda s: None,
  )
  study = store.study(f"cmp-{group}-default-only-s0")
  assert study["strategy"] == "default-only" and study["status"] == "finished"
  with pytest.raises(ValueError, match="each once"):
    Comparison(seeds=(0, 0))
  with pytest.raises(ValueError, match="not among"):
    Comparison(strategies=("agent", "bayes"))


def _finished(values_per_epoch):
  return [
      Trial(
          id=i,
          study_id=1,
          number=i,
          config={},
          signature="s",
          status="finished",
          valid={"NDCG@10": max(v)},
          curve=[{"epoch": e + 1, "NDCG@10": x} for e, x in enumerate(v)],
      )
      for i, v in enumerate(values_per_epoch)
  ]


def test_a_new_stopping_rule_is_one_registry_entry(monkeypatch):
  """A rule is a parameterisation: here the median rule with no grace period."""
  monkeypatch.setitem(
      pruning.RULES,
      "median-eager",
      pruning.StoppingRule(
          lambda grace, min_trials: pruning.MedianRule(1, min_trials), "median from epoch 1"
      ),
  )
  finished = _finished([[0.1, 0.2], [0.1, 0.3], [0.12, 0.25], [0.09, 0.2]])
  eager = pruning.make_pruner("median-eager", finished, grace_epochs=2)
  plain = pruning.make_pruner("median", finished, grace_epochs=2)
  best, alive = np.array([0.01, 0.2]), np.array([True, True])
  assert eager(1, best, alive).tolist() == [True, False]
  assert plain(1, best, alive).tolist() == [False, False]  # inside its grace period
  assert pruning.make_pruner("none", finished) is None
  with pytest.raises(ValueError, match="not one of none, median, median-guarded, median-eager"):
    pruning.make_pruner("sometimes", finished)


def test_the_registered_rules_behave_as_the_named_rules_did():
  """median-guarded is the median rule with the far cut and the leader's-track guard."""
  finished = _finished([[0.10, 0.20], [0.10, 0.18], [0.09, 0.16], [0.01, 0.30]])
  guarded = pruning.make_pruner("median-guarded", finished, grace_epochs=2)
  plain = pruning.make_pruner("median", finished, grace_epochs=2)
  alive = np.ones(3, bool)
  # Epoch 1: references 0.10, 0.10, 0.09, 0.01 (median 0.095); the leader's track is 0.01.
  early = np.array([0.04, 0.06, 0.2])
  assert plain(1, early, alive).tolist() == [False, False, False]
  assert guarded(1, early, alive).tolist() == [False, False, False]  # on the leader's track
  # Epoch 2: references 0.20, 0.18, 0.16, 0.30 (median 0.19); the leader's track is 0.30.
  late = np.array([0.05, 0.185, 0.3])
  assert plain(2, late, alive).tolist() == [True, True, False]
  assert guarded(2, late, alive).tolist() == [True, True, False]
