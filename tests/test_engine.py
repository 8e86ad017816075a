"""The lanes engine: a lane equals a single run, divergence is contained, sharding matches."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data import leave_one_out, make_synthetic
from vmle_jax.engine import Engine
from vmle_jax.models import REGISTRY

SMALL = dict(hidden=16, blocks=1, heads=1, max_len=12, batch_size=64)


@pytest.fixture(scope="module")
def small_engine():
  data = make_synthetic(num_users=240, num_items=60, seed=7)
  # The vmapped engine (what accelerators run); lanes in series are checked against it below.
  schedule = Schedule(max_epochs=4, patience=10, lane_execution="vmap")
  return Engine(leave_one_out(data, 12), schedule, log=None)


@pytest.mark.parametrize("backbone", sorted(REGISTRY))
def test_a_lane_equals_a_single_run(small_engine, backbone):
  base = TrialConfig(backbone=backbone, **SMALL, loss="sampled_softmax", num_negatives=16)
  configs = [
      base.replace(lr=lr, dropout=d, seed=s)
      for lr, d, s in ((1e-3, 0.1, 0), (3e-3, 0.3, 1), (2e-3, 0.0, 2), (5e-4, 0.5, 3))
  ]
  bucket = small_engine.train(configs)
  for i in (0, 2):
    alone = small_engine.train([configs[i]])
    assert alone.lanes[0].best_value == pytest.approx(bucket.lanes[i].best_value, abs=1e-4)
    assert alone.lanes[0].curve[-1]["loss"] == pytest.approx(
        bucket.lanes[i].curve[-1]["loss"], rel=1e-4
    )


def test_a_diverging_lane_leaves_the_others_unchanged(small_engine):
  base = TrialConfig(**SMALL, loss="bce", num_negatives=1)
  configs = [
      base,
      base.replace(lr=10.0, seed=1),
      base.replace(dropout=0.4, seed=2),
      base.replace(lr=1e30, seed=3),
  ]
  with_bad = small_engine.train(configs)
  without = small_engine.train([configs[0], configs[2]])
  assert with_bad.lanes[3].status == "diverged"  # lr=1e30 overflows: frozen, reported
  assert "epoch" in with_bad.lanes[3].error
  for a, b in ((0, 0), (2, 1)):
    assert with_bad.lanes[a].status != "diverged"
    assert with_bad.lanes[a].best_value == pytest.approx(without.lanes[b].best_value, abs=1e-4)


def test_lanes_in_series_give_the_vmapped_results(small_engine):
  """On one CPU device the default trains a bucket's lanes one after another: the same
  statuses, curves, best values, test metrics and parameters as the vmapped bucket."""
  serial = Engine(small_engine.split(12), Schedule(max_epochs=4, patience=2), log=None)
  assert serial.in_series and not small_engine.in_series  # auto on a single CPU device
  base = TrialConfig(**SMALL, loss="bce", num_negatives=1)
  configs = [base.replace(lr=lr, seed=s) for lr, s in ((1e-3, 0), (1e30, 1), (3e-3, 2))]
  together = Engine(
      small_engine.split(12), Schedule(max_epochs=4, patience=2, lane_execution="vmap"), log=None
  ).train(configs)
  apart = serial.train(configs)
  assert [l.status for l in apart.lanes] == [l.status for l in together.lanes]
  assert apart.lanes[1].status == "diverged"
  for a, b in zip(apart.lanes, together.lanes):
    assert a.epochs == b.epochs and a.best_epoch == b.best_epoch
    assert [p["loss"] for p in a.curve] == pytest.approx([p["loss"] for p in b.curve], rel=1e-4)
  for i in (0, 2):
    assert apart.lanes[i].best_value == pytest.approx(together.lanes[i].best_value, abs=1e-4)
  test_apart, test_together = serial.evaluate(apart, "test"), serial.evaluate(together, "test")
  assert len(test_apart) == 3
  assert test_apart[2]["NDCG@10"] == pytest.approx(test_together[2]["NDCG@10"], abs=1e-4)
  # Adam turns rounding noise in near-zero gradients into steps of about lr, so a few
  # parameters may differ by ~1e-4 between machines; another lane differs by far more.
  flat = lambda run, lane: np.concatenate(
      [np.ravel(x) for x in jax.tree.leaves(serial.lane_params(run, lane))]
  )
  same_lane = np.abs(flat(apart, 2) - flat(together, 2)).max()
  other_lane = np.abs(flat(apart, 2) - flat(together, 0)).max()
  assert same_lane < 1e-3 < other_lane, (same_lane, other_lane)
  with pytest.raises(ValueError, match="lane_execution='sometimes'"):
    Schedule(lane_execution="sometimes")


SHARDED = textwrap.dedent("""
    import json, os
    import jax
    from vmle_jax.config import Schedule, TrialConfig
    from vmle_jax.data import leave_one_out, make_synthetic
    from vmle_jax.engine import Engine
    from vmle_jax.engine.lanes import lane_mesh
    data = make_synthetic(num_users=200, num_items=50, seed=3)
    split = leave_one_out(data, 10)
    base = TrialConfig(hidden=16, blocks=1, heads=1, max_len=10, batch_size=64,
                       loss="sampled_softmax", num_negatives=8)
    configs = [base.replace(lr=1e-3 * (1 + i % 4), dropout=0.05 * (i % 5), seed=i)
               for i in range(12)]
    out = {}
    for name, devices in (("sharded", jax.devices()), ("single", jax.devices()[:1])):
      engine = Engine(split, Schedule(max_epochs=3), log=None, mesh=lane_mesh(devices))
      result = engine.train(configs)
      out[name] = [l.best_value for l in result.lanes]
      out[name + "_shards"] = len(result.best_params["params"]["tables"]["items"]["embedding"]
                                  .sharding.device_set)
      out[name + "_padded"] = engine.padded_lanes(len(configs))
    out["devices"] = jax.device_count()
    print(json.dumps(out))
""")


def test_twelve_lanes_sharded_over_eight_devices_match_one_device(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-c", SHARDED],
      capture_output=True,
      text=True,
      env=env,
      timeout=600,
      cwd=tmp_path,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  res = json.loads(out.stdout.strip().splitlines()[-1])
  assert res["devices"] == 8
  assert res["sharded_padded"] == 16 and res["sharded_shards"] == 8
  assert res["single_padded"] == 12 and res["single_shards"] == 1
  np.testing.assert_allclose(res["sharded"], res["single"], atol=1e-4)


def test_memory_estimate_grows_with_the_signature():
  from vmle_jax.engine.capacity import lane_bytes, lanes_per_device, param_count

  small = TrialConfig(hidden=32, blocks=1)
  big = TrialConfig(hidden=256, blocks=4, loss="softmax")
  assert param_count(small, 1000) < param_count(big, 1000)
  assert lane_bytes(small, 1000) < lane_bytes(big, 1000)
  assert lanes_per_device(small, 1000) >= lanes_per_device(big, 1000) >= 1


def test_weight_decay_shrinks_matrices_and_tables_not_biases():
  # With a zero gradient, AdamW's only update is the decoupled decay, lr * wd * p,
  # on parameters of rank >= 2. (A callable mask once read as a schedule and
  # silently switched the decay off everywhere.)
  import jax
  import jax.numpy as jnp
  from vmle_jax.engine import steps

  params = {
      "dense": {"kernel": jnp.ones((4, 3)), "bias": jnp.ones(3)},
      "items": {"embedding": jnp.ones((5, 4))},
      "ln": {"scale": jnp.ones(4)},
  }
  zeros = jax.tree.map(jnp.zeros_like, params)
  for wd in (0.0, 0.5):
    tx = steps.make_optimizer({"lr": 1e-2, "beta1": 0.9, "beta2": 0.98, "weight_decay": wd})
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(updates["dense"]["kernel"], -1e-2 * wd, rtol=1e-6)
    np.testing.assert_allclose(updates["items"]["embedding"], -1e-2 * wd, rtol=1e-6)
    np.testing.assert_allclose(updates["dense"]["bias"], 0.0)
    np.testing.assert_allclose(updates["ln"]["scale"], 0.0)


def test_parameter_average_follows_its_decay_and_is_what_gets_evaluated(small_engine):
  import jax.numpy as jnp
  from vmle_jax.engine import steps

  a = {"w": jnp.zeros(3)}
  p = {"w": jnp.ones(3)}
  # decay 0: the average is the parameters; a warm decay is capped early on.
  np.testing.assert_allclose(steps.update_average(a, p, jnp.float32(0.0), 100)["w"], 1.0)
  np.testing.assert_allclose(steps.update_average(a, p, jnp.float32(0.99), 0)["w"], 0.9, rtol=1e-6)
  np.testing.assert_allclose(
      steps.update_average(a, p, jnp.float32(0.99), 10**6)["w"], 0.01, rtol=1e-4
  )
  # Averaged and raw lanes train identically but validate different parameters.
  base = TrialConfig(**SMALL, loss="softmax")
  raw, averaged = small_engine.train([base, base.replace(param_ema=0.9)]).lanes
  assert [p["loss"] for p in raw.curve] == [p["loss"] for p in averaged.curve]
  assert [p["NDCG@10"] for p in raw.curve] != [p["NDCG@10"] for p in averaged.curve]
  with pytest.raises(ValueError, match="param_ema"):
    base.replace(param_ema=1.0)


def test_a_bucket_too_large_for_the_device_fails_its_trials_not_the_study(tmp_path, monkeypatch):
  """BCE gathers [rows, L, negatives, D] negative embeddings: a config whose estimate
  exceeds the device is refused before it starts (the host would kill the process),
  its trials are marked failed and the study trains the next bucket."""
  from vmle_jax.engine import capacity
  from vmle_jax.memory.store import Store
  from vmle_jax.search.space import SearchSpace
  from vmle_jax.search.strategies import Proposal, Strategy
  from vmle_jax.search.study import StudySpec, run_study

  data = make_synthetic(num_users=240, num_items=60, seed=7)
  small = TrialConfig(**SMALL, loss="bce", num_negatives=1)
  big = small.replace(num_negatives=64)
  need_small, need_big = (capacity.lane_bytes(c, data.num_items) for c in (small, big))
  assert need_big > 3 * need_small
  monkeypatch.setattr(capacity, "device_bytes", lambda device=None: 2 * need_small)

  class Fixed(Strategy):
    name = "fixed"

    def __init__(self):
      self.todo = [big, small]

    def ask(self, n, done):
      out, self.todo = self.todo[:n], self.todo[n:]
      return [Proposal(c) for c in out]

  store = Store(str(tmp_path / "m.sqlite"))
  spec = StudySpec(name="fits", strategy="fixed", budget_trials=2, lanes=2)
  space = SearchSpace.for_backbone("sasrec", base=small, only=["num_negatives"])
  summary = run_study(spec, data, store, Fixed(), space, Schedule(max_epochs=2), log=lambda s: None)
  trials = store.trials(store.study("fits")["id"])
  by_negatives = {t.config["num_negatives"]: t for t in trials}
  assert by_negatives[64].status == "failed" and "GiB" in by_negatives[64].error
  assert by_negatives[1].status != "failed" and by_negatives[1].value is not None
  assert summary["trials"] == 2


def test_lanes_in_series_restart_after_the_lanes_that_had_ended(tmp_path):
  """With checkpoints, a lane that ended before a kill is read back, not trained again,
  and the bucket's folder is gone once every lane has ended."""
  data = make_synthetic(num_users=120, num_items=40, seed=7)
  lines = []
  engine = Engine(data, Schedule(max_epochs=3, patience=10, checkpoint_every=1), log=lines.append)
  base = TrialConfig(hidden=16, blocks=1, heads=1, max_len=12, batch_size=64)
  configs = [base, base.replace(seed=1, lr=2e-3)]
  straight = engine.train(configs, label="b", checkpoint_dir=str(tmp_path / "straight"))
  assert not (tmp_path / "straight").exists()
  # As if killed after the first lane: its final checkpoint is kept in the lane's folder.
  engine._train_bucket(configs[:1], "b", str(tmp_path / "killed" / "lane-0"), None, True)
  lines.clear()
  again = engine.train(configs, label="b", checkpoint_dir=str(tmp_path / "killed"))
  assert any(
      "b lane 1/2] resuming the bucket from its checkpoint after epoch 3" in l for l in lines
  )
  assert not any(l.startswith("[b lane 1/2] epoch") for l in lines)  # not trained again
  assert [l.best_value for l in again.lanes] == pytest.approx(
      [l.best_value for l in straight.lanes], abs=1e-6
  )
  assert [l.status for l in again.lanes] == ["finished", "finished"]
  assert not (tmp_path / "killed").exists()


def test_forgetting_the_programs_makes_the_next_bucket_compile_anew():
  """A comparison's studies each pay their own compilation (search/comparison.py)."""
  from vmle_jax.config import Schedule, TrialConfig
  from vmle_jax.data import make_synthetic
  from vmle_jax.engine import Engine

  engine = Engine(make_synthetic(num_users=60, num_items=30, seed=1), Schedule(max_epochs=1))
  signature = TrialConfig(hidden=16, blocks=1, max_len=8, num_negatives=16)
  first = engine.programs(signature)
  assert engine.programs(signature) is first  # cached: a later bucket does not compile
  engine.forget_programs()
  assert engine.programs(signature) is not first
