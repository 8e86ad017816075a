"""Prepared data files: one compact .npz with the sequences, timestamps and fingerprint.

`vmle-data prepare` writes one; every launcher loads one by path.
"""

from __future__ import annotations

import json
import os

import numpy as np

from vmle_jax.data.dataset import DataError, SequenceDataset

MAGIC = "vmle-jax prepared v1"


def save_prepared(data: SequenceDataset, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  arrays = {"items": data.items.astype(np.int32), "offsets": data.offsets.astype(np.int64)}
  if data.timestamps is not None:
    arrays["timestamps"] = data.timestamps.astype(np.int64)
  meta = {
      "magic": MAGIC,
      "name": data.name,
      "num_items": data.num_items,
      "source": data.source,
      "fingerprint": data.fingerprint(),
  }
  with open(path, "wb") as f:
    np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)
  return path


def load_prepared(path: str, name: str | None = None) -> SequenceDataset:
  try:
    with np.load(path, allow_pickle=False) as z:
      meta = json.loads(str(z["meta"]))
      if meta.get("magic") != MAGIC:
        raise DataError(f"data file {path}: not a vmle-jax prepared file")
      data = SequenceDataset(
          name=name or meta["name"],
          items=z["items"],
          offsets=z["offsets"],
          num_items=int(meta["num_items"]),
          timestamps=z["timestamps"] if "timestamps" in z.files else None,
          source=meta.get("source", path),
      )
  except (OSError, ValueError, KeyError) as e:
    raise DataError(f"data file {path}: cannot read as a prepared .npz ({e})") from None
  if data.fingerprint()["sha256"] != meta["fingerprint"]["sha256"]:
    raise DataError(f"data file {path}: content does not match its fingerprint (corrupted?)")
  return data
