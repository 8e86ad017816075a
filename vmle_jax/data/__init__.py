"""Data: loaders, the synthetic default, leave-one-out splits, fingerprints.

`load_dataset(spec)` is the one entry point the launchers use: `spec` is
"synthetic", a known benchmark name looked up under `data_dir`, a
tensorflow-datasets MovieLens builder ("movielens/1m-ratings"), or a path
(S3Rec .txt, RecBole .inter, CSV/TSV log, raw Amazon dump, prepared .npz).
"""

from __future__ import annotations

import os

from vmle_jax.data.dataset import DataError, SequenceDataset
from vmle_jax.data.formats import load_log, load_recbole, load_s3rec
from vmle_jax.data.split import EvalSplit, LeaveOneOut, leave_one_out
from vmle_jax.data.synthetic import make_synthetic

# Benchmark names and the relative paths (under a data directory) they may live at.
KNOWN_DATASETS = {
    "beauty": ("amazon2014/Beauty.txt", "Beauty.txt"),
    "sports": ("amazon2014/Sports_and_Outdoors.txt", "Sports_and_Outdoors.txt"),
    "toys": ("amazon2014/Toys_and_Games.txt", "Toys_and_Games.txt"),
    "ml-100k": ("ml-100k/ml-100k.inter", "ml-100k.inter"),
}

FORMATS = (
    "auto",
    "s3rec",
    "recbole",
    "csv",
    "amazon2014",
    "amazon2018",
    "amazon2023",
    "tfds",
    "prepared",
)


def default_data_dir() -> str:
  """$VMLE_DATA_DIR, else ./data: where benchmark names are looked up."""
  return os.environ.get("VMLE_DATA_DIR", "data")


def resolve_path(spec: str, data_dir: str | None = None) -> str:
  """Maps a benchmark name or a path to an existing file path."""
  if os.path.exists(spec):
    return spec
  data_dir = data_dir or default_data_dir()
  key = spec.lower()
  if key in KNOWN_DATASETS:
    for rel in KNOWN_DATASETS[key]:
      path = os.path.join(data_dir, rel)
      if os.path.exists(path):
        return path
    raise DataError(
        f"data set {spec!r}: not found under --data_dir={data_dir} (looked for "
        f"{', '.join(KNOWN_DATASETS[key])}); pass --data_dir or a file path"
    )
  raise DataError(
      f"data set {spec!r}: no such file, and not one of synthetic, " f"{', '.join(KNOWN_DATASETS)}"
  )


def load_dataset(
    spec: str = "synthetic",
    data_dir: str | None = None,
    fmt: str = "auto",
    kcore: int | None = None,
) -> SequenceDataset:
  """Loads a data set by name or path (see the module docstring)."""
  if fmt not in FORMATS:
    raise DataError(f"--format={fmt!r}: not one of {', '.join(FORMATS)}")
  if spec == "synthetic":
    return make_synthetic()
  if fmt == "tfds" or (fmt == "auto" and spec.startswith("movielens/")):
    from vmle_jax.data.tfds_loader import load_tfds

    return load_tfds(spec, kcore=5 if kcore is None else kcore)
  path = resolve_path(spec, data_dir)
  name = next(
      (k for k, rels in KNOWN_DATASETS.items() if any(path.endswith(r) for r in rels)), None
  )
  if fmt == "auto":
    if path.endswith(".inter"):
      fmt = "recbole"
    elif path.endswith(".npz"):
      fmt = "prepared"
    elif path.endswith((".json", ".jsonl", ".json.gz", ".jsonl.gz")):
      raise DataError(
          f"data file {path}: JSON lines are ambiguous; pass "
          "--format=amazon2018 or --format=amazon2023"
      )
    elif path.endswith((".csv", ".tsv")):
      fmt = "csv"
    else:
      fmt = "s3rec"
  if fmt == "prepared":
    from vmle_jax.data.prepared import load_prepared

    return load_prepared(path, name=name)
  if fmt in ("amazon2014", "amazon2018", "amazon2023"):
    from vmle_jax.data.raw import LOADERS

    return LOADERS[fmt](path, name=name, kcore=5 if kcore is None else kcore)
  if fmt == "s3rec":
    return load_s3rec(path, name=name)
  if fmt == "recbole":
    return load_recbole(path, name=name, kcore=0 if kcore is None else kcore)
  return load_log(path, name=name, kcore=5 if kcore is None else kcore)


__all__ = [
    "DataError",
    "EvalSplit",
    "FORMATS",
    "KNOWN_DATASETS",
    "LeaveOneOut",
    "SequenceDataset",
    "default_data_dir",
    "leave_one_out",
    "load_dataset",
    "load_log",
    "load_recbole",
    "load_s3rec",
    "make_synthetic",
    "resolve_path",
]
