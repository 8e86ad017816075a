"""Helpers shared by the benchmark scripts (not installed: bench/ runs from the repo)."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.environ.get("VMLE_DATA_DIR", os.path.join(REPO, "..", "shared", "data"))


def machine() -> str:
  """Device and host in a few words, for the one-line result."""
  from vmle_jax.training import device_description

  return device_description()


def today() -> str:
  return time.strftime("%Y-%m-%d")


def start(argv) -> None:
  """What every launcher does first: reject stray arguments, quiet library INFO logs."""
  from vmle_jax.launch.common import reject_positional

  reject_positional(argv)


def run(main) -> None:
  """absl's app.run with a bad flag as one line and exit 2, as the launchers do."""
  from absl import app

  from vmle_jax.launch.common import parse_flags

  app.run(main, flags_parser=parse_flags)


def fail(message: str) -> None:
  """One line on stderr and exit status 2, as the launchers do."""
  from vmle_jax.launch.common import fail as _fail

  _fail(message)


PUBLISHED = (".md", ".html", ".json", ".png", ".csv", ".txt")


LARGE_DATABASE = 1 << 20


def publish(workdir: str, dest: str, databases=()) -> None:
  """Copies a run's state and reports to `dest` (e.g. docs/results/...), for committing.

  SQLite files are copied as consistent snapshots (even while a run writes to
  them) and gzipped above 1 MiB (resume: `gunzip -c F.gz > workdir/F`);
  reports, per-trial CSVs and logs are copied as they are; model parameters and
  checkpoints are not.
  """
  from vmle_jax.memory.store import snapshot

  os.makedirs(dest, exist_ok=True)
  for name in databases:
    path = os.path.join(dest, name)
    snapshot(os.path.join(workdir, name), path)
    if os.path.getsize(path) > LARGE_DATABASE:  # kept small in git: about 8x smaller
      # No name or time in the gzip header: republishing unchanged state gives the same bytes,
      # so a `--report_only` republish does not churn the committed file.
      with open(path, "rb") as f, open(path + ".gz", "wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as g:
          shutil.copyfileobj(f, g)
      os.remove(path)
  for root, dirs, files in os.walk(workdir):
    dirs[:] = [d for d in dirs if d not in ("best_params", "buckets")]
    for f in files:
      if f.endswith(PUBLISHED):
        rel = os.path.relpath(os.path.join(root, f), workdir)
        os.makedirs(os.path.dirname(os.path.join(dest, rel)) or dest, exist_ok=True)
        shutil.copy2(os.path.join(root, f), os.path.join(dest, rel))


def beauty_shapes(**changes):
  """The speed benchmarks' configuration: SASRec at Beauty shapes (L=50, D=64, B=128,
  2 blocks, 1 head, BCE with one negative, dropout 0.2), with `changes`."""
  from vmle_jax.config import TrialConfig

  base = TrialConfig(
      hidden=64,
      blocks=2,
      heads=1,
      max_len=50,
      batch_size=128,
      loss="bce",
      num_negatives=1,
      dropout=0.2,
      attn_dropout=0.2,
  )
  return base.replace(**changes)


def preset_and_mesh(name: str | None):
  """(preset, mesh) of a --preset value, (None, None) without one; a bad name is one line."""
  if not name:
    return None, None
  from vmle_jax.engine.presets import load_preset, preset_mesh

  try:
    preset = load_preset(name)
    return preset, preset_mesh(preset)
  except ValueError as e:
    fail(f"--preset: {e}")


def writable_copy(path: str, dest: str) -> str:
  """A scratch copy of a memory at `dest` (a committed .gz unpacked; a live file snapshotted,
  consistent even while another process writes it); returns `dest`."""
  from vmle_jax.memory.store import snapshot

  if path.endswith(".gz"):
    with gzip.open(path) as src, open(dest, "wb") as out:
      shutil.copyfileobj(src, out)
  else:
    snapshot(path, dest)
  return dest


@contextlib.contextmanager
def published_state(path: str):
  """A Store on an experiment's state for reading: a `.gz` is unpacked to a temporary copy
  (removed on exit), a plain file is opened read-only."""
  from vmle_jax.memory.store import Store

  with tempfile.TemporaryDirectory() as tmp:
    if path.endswith(".gz"):
      store = Store(writable_copy(path, os.path.join(tmp, "state.sqlite")))
    else:
      store = Store(path, readonly=True)
    try:
      yield store
    finally:
      store.close()
