"""Train and evaluate one configuration end to end: the library behind `vmle-train`.

Loads nothing itself: it takes a data set, builds the leave-one-out split,
trains the trial as a single lane of the engine with early stopping, restores
the best epoch's parameters, evaluates them on the test split and writes
results.json, curve.csv and an orbax checkpoint of the best parameters into
the work directory.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import time
from typing import Callable

import jax

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data.dataset import SequenceDataset
from vmle_jax.engine.checkpoint import save_params
from vmle_jax.engine.lanes import Engine
from vmle_jax.eval.ranking import RANK_TIES

PROTOCOLS = ("full", "sampled-100", "both")


def protocol_note(schedule: Schedule, num_items: int, protocol: str = "full") -> str:
  """One sentence saying exactly how the reported numbers were computed."""
  if protocol == "sampled-100":
    return (
        "sampled-100: the target ranked against 99 sampled items the user never "
        "interacted with (inflated; for comparison with older papers only)"
    )
  hist = (
      "the user's history excluded"
      if schedule.exclude_history
      else "the user's history not excluded"
  )
  return f"full ranking over all {num_items:,} items, {hist}, ties {RANK_TIES.split(':')[0]}"


def device_description() -> str:
  d = jax.devices()[0]
  kind = getattr(d, "device_kind", d.platform)
  return f"{len(jax.devices())}x {kind} ({d.platform}), {os.cpu_count()} host cores, {platform.machine()}"


def train_and_evaluate(
    cfg: TrialConfig,
    data: SequenceDataset,
    schedule: Schedule = Schedule(),
    workdir: str | None = None,
    protocol: str = "full",
    log: Callable[[str], None] = print,
    engine: Engine | None = None,
) -> dict:
  """Trains `cfg` on `data` to early stopping and returns the results (also written to workdir)."""
  if protocol not in PROTOCOLS:
    raise ValueError(f"protocol={protocol!r}: not one of {', '.join(PROTOCOLS)}")
  t0 = time.perf_counter()
  log(f"data: {data.describe()}")
  log(f"config: {cfg.canonical_json()}")
  log(
      f"evaluation: {protocol_note(schedule, data.num_items)}; model selection on validation "
      f"NDCG@10, patience {schedule.patience}, at most {schedule.max_epochs} epochs"
  )
  engine = engine or Engine(data, schedule, log=log)
  bucket = engine.train([cfg])
  lane = bucket.lanes[0]
  results = {
      "config": cfg.to_dict(),
      "static_signature": cfg.signature_key(),
      "dataset": data.fingerprint(),
      "schedule": dataclasses.asdict(schedule),
      "status": lane.status,
      "error": lane.error,
      "epochs": lane.epochs,
      "best_epoch": lane.best_epoch,
      "protocol": protocol_note(schedule, data.num_items),
      "valid": lane.valid,
      "device": device_description(),
      "train_seconds": round(bucket.seconds, 2),
      "seconds_per_epoch": round(
          (bucket.seconds - bucket.compile_seconds) / max(1, lane.epochs - 1), 3
      ),
      "steps_per_epoch": bucket.steps_per_epoch,
      "curve": lane.curve,
  }
  if lane.valid:
    results["test"] = engine.evaluate(bucket, "test")[0]
    # The other history convention, for comparison with papers that use it.
    other = not schedule.exclude_history
    results["test_history_excluded" if other else "test_history_included"] = engine.evaluate(
        bucket, "test", exclude_history=other
    )[0]
    if protocol in ("sampled-100", "both"):
      results["sampled-100"] = {
          "note": protocol_note(schedule, data.num_items, "sampled-100"),
          "valid": engine.evaluate(bucket, "valid", "sampled-100")[0],
          "test": engine.evaluate(bucket, "test", "sampled-100")[0],
      }
    if protocol == "sampled-100":  # the headline numbers follow the requested protocol
      results["valid"], results["test"] = (
          results["sampled-100"]["valid"],
          results["sampled-100"]["test"],
      )
      results["protocol"] = results["sampled-100"]["note"]
  results["total_seconds"] = round(time.perf_counter() - t0, 2)
  if workdir:
    os.makedirs(workdir, exist_ok=True)
    if lane.valid:
      params = engine.lane_params(bucket, 0)
      results["checkpoint"] = save_params(os.path.join(workdir, "checkpoints", "best"), params)
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2, sort_keys=True)
    with open(os.path.join(workdir, "curve.csv"), "w", newline="") as f:
      w = csv.DictWriter(f, fieldnames=["epoch", "loss", "NDCG@10", "HR@10"])
      w.writeheader()
      for point in lane.curve:
        w.writerow(point)
    from vmle_jax.report.render import plot_training_curve

    plot_training_curve(
        lane.curve, os.path.join(workdir, "curve.png"), f"{cfg.backbone} on {data.name}"
    )
  return results


def format_metrics(metrics: dict, ks=(5, 10, 20)) -> str:
  """'HR@5 0.0123  NDCG@5 ...' in a fixed order."""
  parts = [f"HR@{k} {metrics[f'HR@{k}']:.4f}" for k in ks]
  parts += [f"NDCG@{k} {metrics[f'NDCG@{k}']:.4f}" for k in ks]
  if "MRR" in metrics:
    parts.append(f"MRR {metrics['MRR']:.4f}")
  return "  ".join(parts)
