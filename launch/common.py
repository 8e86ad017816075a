"""Flags shared by the launchers: data, trial config fields, schedule, output.

Trial-config flags are generated from `TrialConfig`'s fields (types,
defaults, choices and help come from vmle_jax.config), so a new field is a
new flag everywhere without another line here.
"""

from __future__ import annotations

import dataclasses
import sys

from absl import flags

from vmle_jax.config import CHOICES, FIELD_HELP, Schedule, TrialConfig
from vmle_jax.data import FORMATS, DataError, default_data_dir, load_dataset


def define_data_flags() -> None:
  flags.DEFINE_string("dataset", "synthetic",
                      "Data set: 'synthetic' (embedded default, no download), a benchmark name "
                      "(beauty, sports, toys, ml-100k) looked up under --data_dir, or a file path "
                      "(.txt S3Rec, .inter RecBole, .csv/.tsv interaction log).")
  flags.DEFINE_string("data_dir", None,
                      f"Where benchmark names are looked up (default: $VMLE_DATA_DIR or "
                      f"'{default_data_dir()}').")
  flags.DEFINE_enum("format", "auto", list(FORMATS),
                    "File format of --dataset; auto picks by extension.")
  flags.DEFINE_integer("kcore", None,
                       "k-core filter for interaction logs (default: 5 for csv, none for .inter).")


def define_config_flags() -> None:
  """One flag per TrialConfig field."""
  for f in dataclasses.fields(TrialConfig):
    help_ = FIELD_HELP.get(f.name, f.name)
    if f.name in CHOICES:
      flags.DEFINE_enum(f.name, f.default, list(CHOICES[f.name]), help_)
    elif isinstance(f.default, bool):
      flags.DEFINE_boolean(f.name, f.default, help_)
    elif isinstance(f.default, int):
      flags.DEFINE_integer(f.name, f.default, help_)
    elif isinstance(f.default, float):
      flags.DEFINE_float(f.name, f.default, help_)
    else:
      flags.DEFINE_string(f.name, f.default, help_)


def define_schedule_flags() -> None:
  d = Schedule()
  flags.DEFINE_integer("epochs", d.max_epochs, "Maximum training epochs per trial.")
  flags.DEFINE_integer("patience", d.patience,
                       "Early stopping: epochs without a validation NDCG@10 gain before a trial stops.")
  flags.DEFINE_integer("eval_every", d.eval_every, "Validate every this many epochs.")
  flags.DEFINE_integer("data_seed", d.data_seed, "Seed of the batch order (shared by all lanes).")
  flags.DEFINE_integer("eval_batch", d.eval_batch, "Users per evaluation chunk (memory knob).")
  flags.DEFINE_integer("item_chunk", d.item_chunk, "Items scored at once in full ranking (memory knob).")
  flags.DEFINE_boolean("exclude_history", d.exclude_history,
                       "Remove the user's already-seen items from the ranking (off by default; "
                       "every report says which).")
  flags.DEFINE_boolean("packed", d.packed,
                       "Pack short users into shared rows during training: the same loss and "
                       "outputs, less padding work.")


def config_from_flags(FLAGS) -> TrialConfig:
  values = {f.name: getattr(FLAGS, f.name) for f in dataclasses.fields(TrialConfig)}
  try:
    return TrialConfig(**values)
  except ValueError as e:
    fail(f"bad flag value: {e}")


def schedule_from_flags(FLAGS) -> Schedule:
  for name in ("epochs", "patience", "eval_every", "eval_batch", "item_chunk"):
    if getattr(FLAGS, name) < 1:
      fail(f"--{name}={getattr(FLAGS, name)}: must be a positive integer")
  return Schedule(max_epochs=FLAGS.epochs, patience=FLAGS.patience, eval_every=FLAGS.eval_every,
                  data_seed=FLAGS.data_seed, eval_batch=FLAGS.eval_batch,
                  item_chunk=FLAGS.item_chunk, exclude_history=FLAGS.exclude_history,
                  packed=FLAGS.packed)


def dataset_from_flags(FLAGS):
  try:
    return load_dataset(FLAGS.dataset, FLAGS.data_dir, FLAGS.format, FLAGS.kcore)
  except DataError as e:
    fail(str(e))


def fail(message: str) -> None:
  """Prints one clear line and exits with status 2 (no traceback for user errors)."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)
