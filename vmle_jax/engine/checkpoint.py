"""Every orbax checkpoint of the project: a bucket's lane states, and a trial's best parameters.

Both sit on orbax's `CheckpointManager`: a step directory appears only once
it is complete (a kill mid-save leaves the previous step), older steps are
pruned (`max_to_keep=1`), and a JSON item beside the arrays holds what the
host needs (the epoch and per-lane bookkeeping of a bucket; which trial the
parameters belong to).
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp

from vmle_jax.config import TrialConfig

LANE_FIELDS = ("status", "epochs", "best_epoch", "valid", "curve", "stopped_epoch", "error")


def _manager(directory: str) -> ocp.CheckpointManager:
  # Synchronous saves: the next epoch donates the state buffers being written.
  options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False)
  return ocp.CheckpointManager(
      os.path.abspath(directory), options=options, item_names=("arrays", "meta")
  )


class BucketCheckpoint:
  """A bucket's lane states every few epochs, so a killed sweep resumes mid-bucket.

  Keyed by the bucket's configs: a checkpoint of other configs is ignored.
  """

  def __init__(self, directory: str, configs: Sequence[TrialConfig]):
    self.dir = os.path.abspath(directory)
    self.key = [c.canonical_json() for c in configs]
    self._meta: dict | None = None

  def _latest(self) -> tuple[ocp.CheckpointManager, int] | None:
    if not os.path.isdir(self.dir):
      return None
    manager = _manager(self.dir)
    step = manager.latest_step()
    return None if step is None else (manager, step)

  def meta(self) -> dict | None:
    """The host-side state of the latest checkpoint of these configs, if any."""
    if self._meta is None:
      latest = self._latest()
      if latest is None:
        return None
      manager, step = latest
      meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
      self._meta = meta if meta.get("configs") == self.key else None
    return self._meta

  def exists(self) -> bool:
    return self.meta() is not None

  def slots(self) -> np.ndarray | None:
    """Which lane each slot of the saved (possibly compacted) state holds."""
    saved = (self.meta() or {}).get("slots")
    return None if saved is None else np.asarray(saved)

  def save(self, epoch, states, best_params, alive, best, since_best, lanes, slots) -> None:
    meta = {
        "configs": self.key,
        "epoch": int(epoch),
        "alive": np.asarray(alive).tolist(),
        "best": [None if not np.isfinite(b) else float(b) for b in best],
        "since_best": np.asarray(since_best).tolist(),
        "slots": [int(x) for x in slots],
        "lanes": [{f: getattr(l, f) for f in LANE_FIELDS} for l in lanes],
    }
    manager = _manager(self.dir)
    if int(epoch) in manager.all_steps():  # the final state of an epoch saved mid-run
      manager.delete(int(epoch))
    manager.save(
        int(epoch),
        args=ocp.args.Composite(
            arrays=ocp.args.StandardSave({"states": states, "best_params": best_params}),
            meta=ocp.args.JsonSave(meta),
        ),
        force=True,
    )
    manager.wait_until_finished()
    self._meta = meta

  def restore(self, states, best_params) -> tuple[Any, Any, dict]:
    """(states, best_params, host state) of the latest checkpoint, shaped like the given ones."""
    manager, step = self._latest()
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            arrays=ocp.args.StandardRestore({"states": states, "best_params": best_params}),
            meta=ocp.args.JsonRestore(),
        ),
    )
    meta = restored["meta"]
    host = {
        "epoch": meta["epoch"],
        "alive": np.asarray(meta["alive"], bool),
        "best": np.asarray([-np.inf if b is None else b for b in meta["best"]]),
        "since_best": np.asarray(meta["since_best"], int),
        "lanes": meta["lanes"],
    }
    return restored["arrays"]["states"], restored["arrays"]["best_params"], host

  def remove(self) -> None:
    if jax.process_index() == 0:
      shutil.rmtree(self.dir, ignore_errors=True)
    self._meta = None


def save_params(path: str, params, meta: dict | None = None) -> str:
  """Writes a parameter pytree (and a JSON note, e.g. its trial) under `path`; returns it."""
  path = os.path.abspath(path)
  manager = _manager(path)
  step = (manager.latest_step() or 0) + 1
  manager.save(
      step,
      args=ocp.args.Composite(
          arrays=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta or {})
      ),
      force=True,
  )
  manager.wait_until_finished()
  return path


def load_params(path: str, like=None):
  """The parameters last written by `save_params` (shaped like `like` if given)."""
  manager = _manager(path)
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"{path}: no saved parameters")
  arrays = ocp.args.StandardRestore(like) if like is not None else ocp.args.StandardRestore()
  return manager.restore(step, args=ocp.args.Composite(arrays=arrays))["arrays"]


def params_meta(path: str) -> dict | None:
  """The JSON note saved with the parameters at `path`, or None when there are none."""
  if not os.path.isdir(path):
    return None
  manager = _manager(path)
  step = manager.latest_step()
  if step is None:
    return None
  return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
