"""A price before the first measurement: the machine probe, its cache in the memory, the
packed work model, and the budget state's price before and after a study's first bucket."""

import numpy as np
import pytest

from vmle_jax.config import TrialConfig
from vmle_jax.data import leave_one_out, make_synthetic
from vmle_jax.data.packing import pack_epoch
from vmle_jax.engine.lanes import epoch_batches
from vmle_jax.memory.store import Store
from vmle_jax.search import probe
from vmle_jax.search.cost import (
    Price,
    expected_epochs_per_trial,
    lane_epoch_flops,
    measured_price,
    structure,
    train_rows,
)
from vmle_jax.search.recall import budget_state, trial_view

# A probe small enough for a test: one block, a window of 10, a few negatives.
TINY = TrialConfig(hidden=16, blocks=1, max_len=10, num_negatives=16, batch_size=64)
TINY_DATA = {"num_users": 200, "num_items": 60, "min_len": 5, "max_len": 12, "seed": 0}


@pytest.fixture
def tiny_probe(monkeypatch):
  monkeypatch.setattr(probe, "PROBE_CONFIG", TINY)
  monkeypatch.setattr(probe, "PROBE_DATA", TINY_DATA)
  monkeypatch.setattr(probe, "PROBE_EPOCHS", 1)


def test_the_probe_runs_once_per_machine_and_is_read_from_the_memory_after(
    tmp_path, tiny_probe, monkeypatch
):
  store = Store(str(tmp_path / "memory.sqlite"))
  first = probe.machine_price(store)
  assert first.probe_seconds > 0 and first.record["compile_seconds"] >= 0
  price = first.price
  assert price.seconds_per_tflop > 0 and price.seconds_per_lane_epoch > 0
  assert price.seconds_per_compile_unit >= 0

  def no_probe(*args, **kwargs):
    raise AssertionError("probed again")

  monkeypatch.setattr(probe, "probe_price", no_probe)
  again = probe.machine_price(Store(store.path))  # another connection: from the file
  assert again.probe_seconds == 0.0 and again.price == price
  assert probe.cached_price(store) == price
  # Another device (or compute dtype) has no price until it is probed there.
  assert probe.cached_price(store, "bfloat16") is None
  machine, _ = probe.machine_identity()
  assert store.machine_price(machine, "tpu TPU v5 lite", "float32") is None


def _study(store: Store, minutes: float | None) -> dict:
  data = make_synthetic(num_users=100, num_items=40, max_len=12)
  dataset_id = store.upsert_dataset(data.fingerprint())
  sid = store.create_study(
      "s",
      dataset_id,
      "sasrec",
      "grid",
      {"trials": 8, "minutes": minutes},
      {"lanes": 2, "schedule": {"max_epochs": 5, "compute_dtype": "float32"}},
  )
  return store.study(sid)


def test_budget_state_prices_before_the_first_trial_and_measures_after(tmp_path):
  store = Store(str(tmp_path / "memory.sqlite"))
  study = _study(store, minutes=10)
  stats = {"users": 100, "items": 40}
  probed = Price(30.0, 0.2, 8.0)
  machine, device = probe.machine_identity()
  store.put_machine_price(machine, device, "float32", probed.to_dict(), {}, 1.0)
  before = budget_state(study, [], [], stats, store)
  assert before.price == probed and before.price_source == "probe"
  assert budget_state(study, [], [], stats).price is None  # no memory given: no price
  # A first bucket trains: its own measurement takes over.
  configs = [TrialConfig(lr=1e-3), TrialConfig(lr=3e-3)]
  ids, _ = store.start_bucket(study["id"], configs, [{}, {}])
  row = {"status": "finished", "epochs": 4, "bucket_seconds": 40.0, "valid": {"NDCG@10": 0.1}}
  store.finish_bucket([(i, dict(row, seconds=20.0)) for i in ids])
  finished = store.finished_trials(study["id"])
  trials = [trial_view(t) for t in finished]
  after = budget_state(study, finished, trials, stats, store)
  assert after.price_source == "measured"
  assert after.price == measured_price(trials, stats, prior=probed)
  # Epochs a trial is expected to train: the epoch cap until the study has measured some.
  assert expected_epochs_per_trial(before.epochs_per_trial, 5) == 5.0
  assert expected_epochs_per_trial(after.epochs_per_trial, 5) == 4.0
  # Not a budget in minutes: nothing is priced.
  plain = _study(Store(str(tmp_path / "other.sqlite")), minutes=None)
  assert budget_state(plain, [], [], stats, store).price is None


def test_a_price_is_positive_and_orders_a_dearer_structure_above_a_cheaper_one():
  stats = make_synthetic().fingerprint()
  price = Price(30.0, 0.2, 8.0)
  default = TrialConfig().to_dict()
  for change in ({"max_len": 200}, {"loss": "softmax"}, {"hidden": 128}, {"blocks": 3}):
    dearer = TrialConfig(**change).to_dict()
    assert price.seconds(dearer, stats) > price.seconds(default, stats) > 0, change
  assert price.compile_seconds(TrialConfig(blocks=3).to_dict(), stats) > price.compile_seconds(
      default, stats
  )
  # A batch compiles each structure once: four lanes of one structure, one compilation.
  one = price.seconds(default, stats)
  assert price.batch_seconds([default] * 4, stats, 2) == pytest.approx(
      8 * one + price.compile_seconds(default, stats)
  )
  compiled = [structure(default)]
  assert price.batch_seconds([default] * 4, stats, 2, compiled) == pytest.approx(8 * one)
  # A study that measured one structure keeps the probe's split of work and fixed time.
  wide = TrialConfig(hidden=128, loss="softmax").to_dict()
  bucket = [{"config": default, "epochs": 4, "bucket": 0, "bucket_seconds": 8 * one}] * 2
  refined = measured_price(bucket, stats, prior=price)
  assert refined.seconds(default, stats) == pytest.approx(one)
  assert refined.seconds(wide, stats) / refined.seconds(default, stats) == pytest.approx(
      price.seconds(wide, stats) / one
  )


@pytest.mark.parametrize("max_len,batch_size", [(10, 64), (20, 128), (50, 128)])
def test_packed_rows_are_estimated_from_the_length_statistics(max_len, batch_size):
  data = make_synthetic(num_users=3000, num_items=300, min_len=4, max_len=60)
  split = leave_one_out(data, max_len)
  idx = epoch_batches(len(split.train), batch_size, 0, 1)
  rows = pack_epoch(split.train, idx).rows
  cfg = TrialConfig(max_len=max_len, batch_size=batch_size).to_dict()
  steps, estimate = train_rows(cfg, data.stats())
  assert steps == idx.shape[0]
  assert rows <= estimate <= 1.35 * rows + 8
  # Without lengths every user fills a row: never cheaper than the packed estimate.
  full = lane_epoch_flops(cfg, {"users": 3000, "items": 300})
  assert full >= lane_epoch_flops(cfg, data.stats())
  assert np.isfinite(full)
