"""Every searchable dimension can be pinned: the study runs, and every trial keeps the value.

A dimension given as a flag is fixed, not searched; the policies must then
work around it (a rate with a sibling, a structure the playbook wants to
change, ...). Three layers: every strategy on the fake loop (no JAX, every
dimension of both backbones), `vmle-tune` as a user runs it (every dimension,
tiny model, two batches), and `vmle-compare` with all four strategies on the
dimensions whose pinning the policies treat specially.
"""

import sqlite3

import pytest

from vmle_jax.config import TrialConfig
from vmle_jax.memory.store import Store
from vmle_jax.search.agent import AgentStrategy
from vmle_jax.search.planners import HeuristicPlanner
from vmle_jax.search.space import SPACES, Choice, Float, Int, LogFloat, SearchSpace, SpaceError
from vmle_jax.search.strategies import StrategyOptions, build_strategy

from launcher import TINY_ARGS, run_launcher
from policy_runner import fake_study

# The tiny model of the launcher tests, as a config (its flags pin these dimensions too).
TINY = {"hidden": 16, "blocks": 1, "max_len": 10, "num_negatives": 16}


def pin_value(backbone: str, dim: str):
  """A value of `dim` other than the backbone's default that is valid on the tiny model."""
  space = SearchSpace.for_backbone(backbone, base=TrialConfig(backbone=backbone).replace(**TINY))
  d = space.dims[dim]
  if isinstance(d, Choice):
    candidates = [v for v in d.values if v != d.default]
  elif isinstance(d, Int):
    candidates = [v for v in (d.default + 1, d.default - 1) if d.low <= v <= d.high]
  elif isinstance(d, LogFloat):
    candidates = [float(f"{(d.low * d.high) ** 0.5:.3g}")]
  else:
    assert isinstance(d, Float)
    candidates = [float(f"{d.low + 0.3 * (d.high - d.low):.3g}")]
  for v in candidates:
    try:
      space.validate({dim: v})
      return v
    except SpaceError:
      continue
  raise AssertionError(f"no valid pin for {backbone}.{dim}")


CASES = [(b, d) for b in SPACES for d in SPACES[b]]


def _flag(dim: str, value) -> str:
  return f"--{dim}={str(value).lower() if isinstance(value, bool) else value}"


def _tiny_args(dim: str, value) -> list[str]:
  """The launcher tests' tiny model and two batches of two lanes, with `dim` pinned."""
  args = [a for a in TINY_ARGS if not a.startswith((f"--{dim}=", "--budget_trials", "--epochs"))]
  return [*args, "--budget_trials=4", "--epochs=1", _flag(dim, value)]


@pytest.mark.parametrize("strategy", ["agent", "tpe", "random", "grid"])
@pytest.mark.parametrize("backbone,dim", CASES)
def test_every_strategy_keeps_a_pinned_dimension(tmp_path, backbone, dim, strategy):
  value = pin_value(backbone, dim)
  base = TrialConfig(backbone=backbone).replace(**TINY)
  space = SearchSpace.for_backbone(backbone, base=base, fixed={dim: value})
  options = StrategyOptions(seed=0, lanes=4, log=lambda s: None)
  policy = build_strategy(strategy, space, options)  # the registry the launchers read
  store = Store(str(tmp_path / "m.sqlite"))
  trials = fake_study(policy, space, store, trials=12, lanes=4)
  assert len(trials) == 12
  assert all(t.config[dim] == value for t in trials), [t.config[dim] for t in trials]
  failed = [c for c in store.llm_calls(store.study("fake")["id"]) if c["outcome"] == "error"]
  assert not failed, failed


def _pinned_trials(db, dim: str) -> list:
  with sqlite3.connect(db) as conn:
    rows = conn.execute("SELECT config, status FROM trials").fetchall()
  import json

  return [(json.loads(c)[dim], s) for c, s in rows]


@pytest.mark.parametrize("backbone,dim", CASES)
def test_vmle_tune_runs_with_any_dimension_pinned(tmp_path, backbone, dim):
  value = pin_value(backbone, dim)
  out = run_launcher(tmp_path, "tune", [*_tiny_args(dim, value), f"--backbone={backbone}"], "pin")
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
  trials = _pinned_trials(tmp_path / "m.sqlite", dim)
  assert len(trials) == 4 and all(v == value for v, _ in trials), trials


# The dimensions whose pinning a policy treats specially: a rate with a sibling that follows
# it (dropout / attn_dropout) and a rate that needs a switch (temperature / l2_norm). The
# rest run with -m slow (every structure a baseline draws compiles: minutes per case).
COMPARE_CASES = [("sasrec", "dropout"), ("hstu", "l2_norm")]
# The rates and the switch they depend on: the baselines vary little structure, so each
# case compiles a few programs, while the agent still meets every sibling rule.
COMPARE_DIMS = "lr,weight_decay,dropout,attn_dropout,temperature,l2_norm"


@pytest.mark.parametrize(
    "backbone,dim",
    [
        pytest.param(b, d, marks=() if (b, d) in COMPARE_CASES else pytest.mark.slow)
        for b, d in CASES
    ],
)
def test_vmle_compare_runs_every_strategy_with_a_dimension_pinned(tmp_path, backbone, dim):
  value = pin_value(backbone, dim)
  args = [
      *_tiny_args(dim, value),
      f"--backbone={backbone}",
      "--seeds=0",
      "--strategies=agent,tpe,random,grid",
      f"--dims={COMPARE_DIMS},{dim}",
  ]
  out = run_launcher(tmp_path, "compare", args, "unused")
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
  trials = _pinned_trials(tmp_path / "m.sqlite", dim)
  assert len(trials) == 16 and all(v == value for v, _ in trials), trials


def test_a_planner_error_is_recorded_and_the_batch_still_trains(tmp_path):
  class Broken(HeuristicPlanner):

    def propose(self, context, n, feedback):
      raise RuntimeError("planner defect")

  space = SearchSpace.for_backbone("sasrec", base=TrialConfig().replace(**TINY))
  agent = AgentStrategy(Broken(), space, log=lambda s: None)
  agent.fallback = Broken()  # the offline fallback fails too
  store = Store(str(tmp_path / "m.sqlite"))
  trials = fake_study(agent, space, store, trials=8, lanes=4)
  assert len(trials) == 8 and {t.proposal["kind"] for t in trials} == {"random"}
  errors = [c for c in store.llm_calls(store.study("fake")["id"]) if c["outcome"] == "error"]
  assert errors and all("planner defect" in c["detail"] for c in errors)
