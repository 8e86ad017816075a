"""MovieLens from tensorflow-datasets (an optional extra: pip install 'vmle-jax[tfds]').

Builders `movielens/100k-ratings`, `1m-ratings`, `20m-ratings`: user_id,
movie_id and timestamp become chronological sequences (ties in file order),
k-core filtered and re-indexed like any raw log. TensorFlow is imported only
when this loader is used.
"""

from __future__ import annotations

import numpy as np

from vmle_jax.data.dataset import DataError, SequenceDataset
from vmle_jax.data.formats import sequences_from_log

TFDS_DATASETS = ("movielens/100k-ratings", "movielens/1m-ratings", "movielens/20m-ratings")


def load_tfds(
    name: str = "movielens/100k-ratings", kcore: int = 5, data_dir: str | None = None
) -> SequenceDataset:
  if name not in TFDS_DATASETS:
    raise DataError(f"tfds data set {name!r}: not one of {', '.join(TFDS_DATASETS)}")
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise DataError(
        "the tfds format needs tensorflow-datasets and TensorFlow: " "pip install 'vmle-jax[tfds]'"
    ) from None
  ds = tfds.load(name, split="train", data_dir=data_dir)
  users, items, times = [], [], []
  for ex in tfds.as_numpy(ds.batch(65536)):
    users.append(np.asarray(ex["user_id"]).astype(str))
    items.append(np.asarray(ex["movie_id"]).astype(str))
    times.append(np.asarray(ex["timestamp"]).astype(np.int64))
  if not users:
    raise DataError(f"tfds data set {name}: no rows")
  users, items, times = np.concatenate(users), np.concatenate(items), np.concatenate(times)
  short = name.split("/")[1].replace("-ratings", "")
  return sequences_from_log(
      f"tfds:{name}", f"ml-{short}", users, items, times, np.arange(1, len(users) + 1), kcore=kcore
  )
