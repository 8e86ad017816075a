"""A price before the first measurement: a short probe of this machine, cached in the memory.

Under a budget in minutes the planner prices every proposal in seconds, but a
study's own price (search/cost.py `measured_price`) exists only once a bucket
has trained. The probe trains the default structure (SASRec, width 64, 2
blocks, window 50, sampled softmax) for a few epochs on a fixed synthetic
shape, twice with the same programs: the first run's extra time over the
second is compilation, the second run's time per epoch over the work of a
lane-epoch (`lane_epoch_flops`) is this machine's seconds per TFLOP. The
result is a `Price` stored in the memory per machine (host name and CPU
model), device (platform and kind) and compute dtype, so each machine probes
once; a study's own buckets replace it as soon as they exist.

The probe prices one lane on one device, as lanes train on a CPU (one after
another); on a mesh of several devices lanes run side by side, and the
study's measured price takes over after its first bucket.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from typing import Callable

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.memory.store import Store
from vmle_jax.search.cost import (
    FIXED_FLOPS_PER_LANE_EPOCH,
    Price,
    compile_units,
    lane_epoch_flops,
)

# The structure probed: the search space's default (what a first batch mostly trains).
PROBE_CONFIG = TrialConfig()
# A synthetic shape whose epoch is about a second of work on a 2-core CPU (larger matmuls
# than the embedded default data set's 500 items), so the fixed time of an epoch does not
# dominate what is timed.
PROBE_DATA = {"num_users": 4000, "num_items": 2000, "min_len": 6, "max_len": 40, "seed": 0}
PROBE_EPOCHS = 2  # timed epochs of each run


@dataclasses.dataclass(frozen=True)
class MachinePrice:
  """This machine's price, and the seconds a probe spent now (0 when it came from the
  memory): a study that ran the probe charges them to its budget."""

  price: Price
  probe_seconds: float
  record: dict


def cpu_model() -> str:
  """The CPU's model name (Linux /proc/cpuinfo, else what the platform says)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.lower().startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine_identity() -> tuple[str, str]:
  """(machine, device): host name, CPU model and cores, and the platform and kind of this
  process's first device (cpu, "gpu NVIDIA H100 80GB HBM3", "tpu TPU v5 lite"); the keys
  of a price in the memory."""
  import jax

  d = jax.local_devices()[0]
  kind = str(getattr(d, "device_kind", "") or d.platform)
  machine = f"{platform.node()} / {cpu_model()} / {os.cpu_count()} cores"
  return machine, d.platform if kind.lower() == d.platform else f"{d.platform} {kind}"


def probe_price(
    compute_dtype: str = "float32",
    clock: Callable[[], float] = time.perf_counter,
    log: Callable[[str], None] | None = None,
) -> tuple[Price, dict]:
  """Runs the probe (see the module docstring); returns the price and what was measured.

  `clock` times the runs (time.perf_counter: wall-clock, what a study pays; a benchmark on
  a shared core may pass time.process_time)."""
  import jax

  from vmle_jax.data import make_synthetic
  from vmle_jax.engine import Engine
  from vmle_jax.engine.lanes import lane_mesh

  cfg = PROBE_CONFIG
  data = make_synthetic(**PROBE_DATA)
  stats = data.stats()
  schedule = Schedule(
      max_epochs=PROBE_EPOCHS, patience=PROBE_EPOCHS + 1, compute_dtype=compute_dtype
  )
  engine = Engine(data, schedule, log=None, mesh=lane_mesh(jax.local_devices()[:1]))
  t = clock()
  engine.train([cfg], label="probe")
  first = clock() - t
  t = clock()
  engine.train([cfg.replace(seed=1)], label="probe")
  again = clock() - t
  per_epoch = again / PROBE_EPOCHS
  work = lane_epoch_flops(cfg.to_dict(), stats) / 1e12
  fixed = FIXED_FLOPS_PER_LANE_EPOCH / 1e12
  rate = per_epoch / (work + fixed)
  compile_s = max(0.0, first - again)
  price = Price(rate, rate * fixed, compile_s / compile_units(cfg.to_dict(), stats))
  record = {
      "config": cfg.to_dict(),
      "data": PROBE_DATA,
      "epochs": PROBE_EPOCHS,
      "first_run_seconds": round(first, 3),
      "second_run_seconds": round(again, 3),
      "compile_seconds": round(compile_s, 3),
      "seconds_per_epoch": round(per_epoch, 4),
      "tflop_per_epoch": round(work, 5),
      "jax": jax.__version__,
  }
  if log:
    log(
        f"price probe: {per_epoch:.2f} s per lane-epoch of {work * 1e3:.0f} GFLOP "
        f"({rate:.1f} s/TFLOP), {compile_s:.0f} s compiling the default structure"
    )
  return price, record


def cached_price(store: Store, compute_dtype: str = "float32") -> Price | None:
  """This machine's probed price from the memory, or None if it was never probed here."""
  machine, device = machine_identity()
  row = store.machine_price(machine, device, compute_dtype)
  return Price.from_dict(row["price"]) if row else None


def machine_price(
    store: Store,
    compute_dtype: str = "float32",
    clock: Callable[[], float] = time.perf_counter,
    log: Callable[[str], None] | None = None,
) -> MachinePrice:
  """This machine's price: from the memory, or probed now (seconds) and stored there."""
  machine, device = machine_identity()
  row = store.machine_price(machine, device, compute_dtype)
  if row:
    return MachinePrice(Price.from_dict(row["price"]), 0.0, row["probe"])
  if log:
    log(f"no price of this machine ({device}) in the memory yet: probing it (seconds)")
  t = time.perf_counter()
  price, record = probe_price(compute_dtype, clock, log)
  seconds = time.perf_counter() - t
  store.put_machine_price(machine, device, compute_dtype, price.to_dict(), record, seconds)
  return MachinePrice(price, seconds, record)
