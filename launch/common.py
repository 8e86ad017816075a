"""Flags shared by the launchers: data, trial config fields, schedule, output.

Trial-config flags are generated from `TrialConfig`'s fields (types,
defaults, choices and help come from vmle_jax.config), so a new field is a
new flag everywhere without another line here.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import re
import sys
import time

from absl import flags

from vmle_jax.config import (
    CHOICES,
    FIELD_HELP,
    LANE_EXECUTIONS,
    Resolved,
    Schedule,
    TrialConfig,
    resolve,
)
from vmle_jax.data import FORMATS, DataError, default_data_dir, load_dataset
from vmle_jax.search.pruning import RULES as EARLY_STOP_RULES


def define_data_flags() -> None:
  flags.DEFINE_string(
      "dataset",
      "synthetic",
      "Data set: 'synthetic' (embedded default, no download), a benchmark name "
      "(beauty, sports, toys, ml-100k) looked up under --data_dir, a "
      "tensorflow-datasets builder (movielens/100k-ratings, 1m, 20m; needs the "
      "tfds extra), or a file path (.txt S3Rec, .inter RecBole, .csv/.tsv log, "
      "raw Amazon dump with --format, .npz from `vmle-data prepare`).",
  )
  flags.DEFINE_string(
      "data_dir",
      None,
      f"Where benchmark names are looked up (default: $VMLE_DATA_DIR or "
      f"'{default_data_dir()}').",
  )
  flags.DEFINE_enum(
      "format", "auto", list(FORMATS), "File format of --dataset; auto picks by extension."
  )
  flags.DEFINE_integer(
      "kcore",
      None,
      "k-core filter for interaction logs (default: 5 for csv, raw dumps and "
      "tfds; none for .inter).",
  )


def dimension_names() -> str:
  """The searchable dimensions of each backbone, for the --dims flags' help."""
  from vmle_jax.search.space import SPACES

  return "; ".join(f"{b}: {', '.join(dims)}" for b, dims in SPACES.items())


def define_config_flags() -> None:
  """One flag per TrialConfig field, and --recipe (a documented starting config)."""
  from vmle_jax.recipes import RECIPES

  flags.DEFINE_enum(
      "recipe",
      None,
      list(RECIPES),
      "Start from a documented recipe (vmle_jax/recipes.py): its config and "
      "schedule replace the defaults; a --preset and flags given explicitly "
      "override it. Searches start from it.",
  )
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


def define_schedule_flags(default_epochs: int | None = None) -> None:
  d = Schedule()
  flags.DEFINE_integer(
      "epochs", default_epochs or d.max_epochs, "Maximum training epochs per trial."
  )
  flags.DEFINE_integer(
      "patience",
      d.patience,
      "Early stopping: epochs without a validation NDCG@10 gain before a trial stops.",
  )
  flags.DEFINE_integer("eval_every", d.eval_every, "Validate every this many epochs.")
  flags.DEFINE_integer("data_seed", d.data_seed, "Seed of the batch order (shared by all lanes).")
  flags.DEFINE_integer("eval_batch", d.eval_batch, "Users per evaluation chunk (memory knob).")
  flags.DEFINE_integer(
      "item_chunk", d.item_chunk, "Items scored at once in full ranking (memory knob)."
  )
  flags.DEFINE_boolean(
      "exclude_history",
      d.exclude_history,
      "Remove the user's already-seen items from the ranking (off by default; "
      "every report says which).",
  )
  flags.DEFINE_boolean(
      "packed",
      d.packed,
      "Pack short users into shared rows during training: the same loss and "
      "outputs, less padding work.",
  )
  flags.DEFINE_enum(
      "compute_dtype",
      d.compute_dtype,
      ["float32", "bfloat16"],
      "Matmul dtype; parameters and optimizer state stay float32.",
  )
  flags.DEFINE_integer(
      "checkpoint_every",
      d.checkpoint_every,
      "Save a bucket's lane states every N epochs so that a killed sweep "
      "resumes mid-bucket (0: never; needs a work directory).",
  )
  flags.DEFINE_enum(
      "lane_execution",
      d.lane_execution,
      list(LANE_EXECUTIONS),
      "How a bucket's lanes train: vmap (together, one program over all lanes), serial "
      "(one after another, the same results), auto (serial on a single CPU device, where "
      "vmapped lanes ran slower, vmap on accelerators and meshes).",
  )
  define_scale_flags()


def define_scale_flags() -> None:
  """Hardware presets (ml_collections config files), multi-host and profiling."""
  from ml_collections import config_flags
  from vmle_jax.engine.presets import PresetFileParser

  config_flags.DEFINE_config_file(
      "preset",
      None,
      "Host preset: a name in tpu_configs/ (cpu, gpu_1x, gpu_8x, tpu_v4_8, tpu_v5e_16) or a "
      "preset file; sets the mesh, lanes per device, batch size, dtype and eval chunks. Any "
      "field can be set after it (--preset.lanes_per_device=64); flags given explicitly "
      "override it.",
  )
  flags.FLAGS["preset"].parser = PresetFileParser(flags.FLAGS["preset"].parser)  # bare names
  flags.DEFINE_boolean(
      "distributed",
      False,
      "Join a multi-host job with jax.distributed (process 0 owns the memory).",
  )
  flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (with --distributed).")
  flags.DEFINE_integer("num_processes", None, "Processes in the job (with --distributed).")
  flags.DEFINE_integer("process_id", None, "This process's index (with --distributed).")
  flags.DEFINE_string("profile_dir", None, "Write a JAX profiler trace of one epoch here.")


def setup_runtime(FLAGS):
  """Joins a multi-host job if asked (before any JAX work); returns the preset or None."""
  if FLAGS.distributed:
    from vmle_jax.engine import distributed

    missing = [
        n
        for n in ("coordinator_address", "num_processes", "process_id")
        if getattr(FLAGS, n) is None
    ]
    if missing:
      fail(f"--distributed needs {', '.join('--' + m for m in missing)}")
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  return FLAGS.preset


def resolve_flags(FLAGS, preset=None) -> Resolved:
  """The run's trial config, schedule and mesh (vmle_jax.config.resolve) from the flags:
  values given explicitly override the preset, which overrides the --recipe; flags left at
  their defaults carry the launcher's own defaults (e.g. vmle-tune's --epochs)."""
  for name in ("epochs", "patience", "eval_every", "eval_batch", "item_chunk"):
    if getattr(FLAGS, name) < 1:
      fail(f"--{name}={getattr(FLAGS, name)}: must be a positive integer")
  config_given = explicit_config_flags(FLAGS)
  schedule_given = {
      field: getattr(FLAGS, flag) for flag, field in SCHEDULE_FLAGS.items() if FLAGS[flag].present
  }
  launcher = {
      field: getattr(FLAGS, flag)
      for flag, field in SCHEDULE_FLAGS.items()
      if not FLAGS[flag].present
  }
  try:
    return resolve(
        recipe=FLAGS.recipe,
        preset=preset,
        config_flags=config_given,
        schedule_flags=schedule_given,
        launcher_schedule=launcher,
    )
  except ValueError as e:
    fail(f"bad flag value: {e}")


def engine_from_flags(FLAGS, data, resolved: Resolved, preset=None, log=print):
  """The engine over the preset's mesh (or all devices on the lanes axis)."""
  from vmle_jax.engine import Engine

  mesh = None
  if preset is not None:
    from vmle_jax.engine.presets import build_mesh

    try:
      mesh = build_mesh(resolved.mesh)
    except ValueError as e:
      fail(f"--preset: {e}")
  return Engine(data, resolved.schedule, log=log, mesh=mesh, profile_dir=FLAGS.profile_dir)


@dataclasses.dataclass
class StudySetup:
  """What every study launcher builds from its flags."""

  preset: object
  data: object
  schedule: Schedule
  base: TrialConfig
  space: object
  engine: object
  lanes: int
  started: float = 0.0  # time.perf_counter() when setup began: start-up is charged to a study


STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_study_name(name: str, flag: str = "--study") -> str:
  """A study name is also a directory under runs/: letters, digits, '.', '_' and '-' only."""
  if not STUDY_NAME.match(name) or ".." in name:
    fail(
        f"{flag}={name[:80]!r}: a study name is a file name: letters, digits, '.', '_' and "
        "'-', starting with a letter or digit, at most 128 characters"
    )
  return name


def safe_name(text: str) -> str:
  """A derived name (e.g. from a data file's name) made safe as a study name."""
  out = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-") or "data"
  return out[:100]


def trial_cap(FLAGS) -> int | None:
  """The study's trial cap: --budget_trials when given, or without a compute budget its
  default; under --budget_minutes/--budget_lane_epochs with no --budget_trials, no cap (the
  compute budget binds, not a count the user never set)."""
  compute = FLAGS.budget_minutes is not None or FLAGS.budget_lane_epochs is not None
  return None if compute and not FLAGS["budget_trials"].present else FLAGS.budget_trials


def check_budgets(FLAGS) -> None:
  """Budgets must be positive (and finite): an empty study is never what was meant."""
  if FLAGS.budget_trials < 1:
    fail(f"--budget_trials={FLAGS.budget_trials}: must be at least 1")
  minutes = FLAGS.budget_minutes
  if minutes is not None and (not math.isfinite(minutes) or minutes <= 0):
    fail(f"--budget_minutes={minutes}: must be a positive number of minutes")
  epochs = FLAGS.budget_lane_epochs
  if epochs is not None and epochs < 1:
    fail(f"--budget_lane_epochs={epochs}: must be at least 1")
  tokens = getattr(FLAGS, "budget_tokens", None) if "budget_tokens" in FLAGS else None
  if tokens is not None and tokens < 1:
    fail(f"--budget_tokens={tokens}: must be at least 1")


def study_setup(FLAGS, dims=None) -> StudySetup:
  """Preset, data, schedule, base config, search space, engine and lanes from the flags.

  The search starts from the resolved config (recipe, preset and flags applied);
  dimensions given explicitly as flags are fixed, not searched."""
  from vmle_jax.search.space import SearchSpace, SpaceError

  started = time.perf_counter()
  check_budgets(FLAGS)
  if FLAGS.study:
    check_study_name(FLAGS.study)
  if "dims" in FLAGS and FLAGS["dims"].present and not FLAGS.dims:
    fail("--dims is empty: name the dimensions to search, or leave it out for the whole space")
  preset = setup_runtime(FLAGS)
  resolved = resolve_flags(FLAGS, preset)
  base = resolved.config
  fixed = explicit_config_flags(FLAGS)
  fixed.pop("seed", None)
  try:
    space = SearchSpace.for_backbone(base.backbone, base=base, only=dims, fixed=fixed)
  except SpaceError as e:
    fail(f"--dims: {e}")
  if not space.dims:
    pinned = ", ".join(f"--{d}" for d in (dims or fixed) if d in fixed)
    fail(f"nothing left to search: every dimension is pinned by its flag ({pinned})")
  data = dataset_from_flags(FLAGS)
  engine = engine_from_flags(
      FLAGS, data, resolved, preset, log=print if FLAGS.verbose_epochs else None
  )
  return StudySetup(
      preset,
      data,
      resolved.schedule,
      base,
      space,
      engine,
      lanes_from_flags(FLAGS, space, data, resolved, engine),
      started=started,
  )


def run_study_from_flags(FLAGS, setup: StudySetup, spec, store, strategy, workdir: str) -> dict:
  """`run_study` with what every study launcher passes (resume, overrides, work directory)."""
  from vmle_jax.search.study import run_study

  return run_study(
      spec,
      setup.data,
      store,
      strategy,
      setup.space,
      setup.schedule,
      engine=setup.engine,
      resume=FLAGS.resume,
      workdir=workdir,
      overrides=tuple(FLAGS.override),
      started=setup.started or None,
  )


def open_store(path: str, readonly: bool = False):
  """The SQLite memory on process 0; None on the other processes of a multi-host job.
  A file that cannot be used is a one-line error naming --db."""
  import jax
  from vmle_jax.memory.store import Store, StoreError

  if jax.process_index() != 0:
    return None
  try:
    return Store(path, readonly=readonly)
  except StoreError as e:
    fail(str(e))


def define_study_flags(default_trials: int = 16) -> None:
  """Flags of launchers that run studies (sweep, tune, compare)."""
  flags.DEFINE_string(
      "db",
      "runs/memory.sqlite",
      "SQLite memory file: data sets, studies, trials (created if missing).",
  )
  flags.DEFINE_string(
      "study", None, "Study name (default: <dataset>-<backbone>-<strategy>-s<seed>)."
  )
  flags.DEFINE_boolean(
      "resume",
      False,
      "Continue the named study: finished trials are kept, interrupted ones "
      "re-run. Settings must match the stored ones (see --override).",
  )
  flags.DEFINE_list(
      "override",
      [],
      "With --resume: stored settings this run may change (budget, schedule, "
      "lanes, early_stop); the change is recorded in the study.",
  )
  flags.DEFINE_integer(
      "budget_trials",
      default_trials,
      "Trials to run in the study. With --budget_minutes or --budget_lane_epochs a cap only "
      "when given (left out: no cap, the compute budget binds).",
  )
  flags.DEFINE_float(
      "budget_minutes",
      None,
      "Stop after this many minutes of training and planning (summed over resumed runs), "
      "or before a batch that the study's measured seconds per lane-epoch say cannot fit.",
  )
  flags.DEFINE_integer(
      "budget_lane_epochs",
      None,
      "Stop after this many lane-epochs (epochs trained, summed over trials), or before a "
      "batch that the study's epochs per trial so far say cannot fit.",
  )
  flags.DEFINE_integer(
      "lanes",
      0,
      "Trials trained together as lanes of one program (0: 8 on CPU, else as many "
      "as a memory estimate fits on the devices).",
  )
  flags.DEFINE_string("workdir", None, "Output directory (default: runs/<study>).")
  flags.DEFINE_boolean("verbose_epochs", True, "Print one line per epoch of every bucket.")
  flags.DEFINE_enum(
      "early_stop",
      "none",
      list(EARLY_STOP_RULES),
      "Stop losing lanes early, whatever the strategy (search/pruning.py): "
      + "; ".join(f"{name} {rule.help}" for name, rule in EARLY_STOP_RULES.items())
      + ". A stopped lane stops costing compute.",
  )


def define_planner_flags() -> None:
  """Flags of launchers that run the agent (tune, compare)."""
  flags.DEFINE_enum(
      "planner",
      "heuristic",
      ["heuristic", "gemini", "replay"],
      "Who proposes trials: heuristic (offline, deterministic, the default; not an "
      "LLM), gemini (google-genai; key from GEMINI_API_KEY or GOOGLE_API_KEY), or "
      "replay (answers from a recorded --transcript).",
  )
  flags.DEFINE_string("model", None, "Gemini model name (default: a current Flash model).")
  flags.DEFINE_float("llm_timeout_s", 20.0, "Seconds one LLM request may take.")
  flags.DEFINE_integer(
      "llm_retries",
      2,
      "Attempts per LLM call (1 = no retry); a call costs at most "
      "--llm_timeout_s x --llm_retries, then the heuristic planner fills in.",
  )
  flags.DEFINE_float(
      "planner_minutes",
      None,
      "Per-study cap on the LLM planner's time; past it, the heuristic planner "
      "proposes and reflects (recorded as a fallback).",
  )


def check_names(flag: str, given: list[str], allowed) -> list[str]:
  """A list flag's names: at least one, each among `allowed`, none twice (a repeated strategy
  or group would run its studies twice); a bad list is one line before anything runs."""
  allowed = list(allowed)
  if not given:
    fail(f"{flag} is empty: give one or more of {', '.join(allowed)}")
  bad = [g for g in given if g not in allowed]
  if bad:
    fail(f"{flag}: {', '.join(bad)} not among {', '.join(allowed)}")
  _no_repeats(flag, given)
  return list(given)


def check_seeds(flag: str, given: list[str]) -> list[int]:
  """A list of seeds: at least one, integers, none twice (a repeated seed would train its
  studies twice)."""
  if not given:
    fail(f"{flag} is empty: give one or more integer seeds, e.g. {flag}=0,1")
  try:
    seeds = [int(s) for s in given]
  except ValueError:
    fail(f"{flag}={','.join(given)}: seeds are integers")
  _no_repeats(flag, seeds)
  return seeds


def _no_repeats(flag: str, values: list) -> None:
  repeated = sorted({str(v) for v in values if values.count(v) > 1})
  if repeated:
    fail(f"{flag}={','.join(map(str, values))}: {', '.join(repeated)} given twice; give each once")


def check_planner_flags(FLAGS) -> None:
  if not math.isfinite(FLAGS.llm_timeout_s) or FLAGS.llm_timeout_s <= 0:
    fail(f"--llm_timeout_s={FLAGS.llm_timeout_s}: must be a positive number of seconds")
  if FLAGS.llm_retries < 1:
    fail(f"--llm_retries={FLAGS.llm_retries}: must be at least 1 (attempts per call)")
  minutes = FLAGS.planner_minutes
  if minutes is not None and (not math.isfinite(minutes) or minutes <= 0):
    fail(f"--planner_minutes={minutes}: must be a positive number of minutes")


def explicit_config_flags(FLAGS) -> dict:
  """Trial-config fields given explicitly on the command line (a study keeps them fixed)."""
  return {
      f.name: getattr(FLAGS, f.name)
      for f in dataclasses.fields(TrialConfig)
      if FLAGS[f.name].present
  }


def lanes_from_flags(FLAGS, space, data, resolved: Resolved | None = None, engine=None) -> int:
  """--lanes, the preset's lanes per device, or a choice from the devices and a memory estimate."""
  import jax

  if FLAGS.lanes < 0:
    fail(f"--lanes={FLAGS.lanes}: must be >= 0 (0 = automatic)")
  if FLAGS.lanes:
    return FLAGS.lanes
  devices = engine.num_devices if engine is not None else jax.device_count()
  if resolved is not None and resolved.mesh.lanes_per_device:
    return int(resolved.mesh.lanes_per_device) * devices
  if jax.devices()[0].platform == "cpu":
    return 8 * jax.device_count()
  from vmle_jax.engine.capacity import lanes_per_device

  largest = (
      space.base.replace(hidden=max(space.dims["hidden"].values))
      if "hidden" in space.dims
      else space.base
  )
  return lanes_per_device(largest, data.num_items) * jax.device_count()


def device_summary() -> str:
  import jax

  d = jax.devices()[0]
  return f"{jax.device_count()} {getattr(d, 'device_kind', d.platform)} device(s)"


def reject_positional(argv) -> None:
  """Fails on stray positional arguments and quiets library INFO logs (e.g. orbax)."""
  from absl import logging

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    fail(f"unexpected arguments {argv[1:]}; flags are written --name=value")


SCHEDULE_FLAGS = {
    "epochs": "max_epochs",
    "patience": "patience",
    "eval_every": "eval_every",
    "data_seed": "data_seed",
    "eval_batch": "eval_batch",
    "item_chunk": "item_chunk",
    "exclude_history": "exclude_history",
    "packed": "packed",
    "compute_dtype": "compute_dtype",
    "checkpoint_every": "checkpoint_every",
    "lane_execution": "lane_execution",
}


def dataset_from_flags(FLAGS):
  try:
    return load_dataset(FLAGS.dataset, FLAGS.data_dir, FLAGS.format, FLAGS.kcore)
  except DataError as e:
    fail(str(e))


def run_main(main) -> None:
  """absl's app.run with the failures users meet turned into one line and status 2:
  output piped into `head` (closed early), a full disk, a path that cannot be written."""
  from absl import app

  def guarded(argv):
    from vmle_jax.engine.capacity import LaneMemoryError
    from vmle_jax.memory.store import StoreError
    from vmle_jax.search.study import StudyError

    try:
      return main(argv)
    except (StoreError, StudyError, LaneMemoryError) as e:
      fail(str(e))
    except BrokenPipeError:
      _reader_went_away()
    except OSError as e:
      if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
        fail(f"{e.filename or 'a file'}: {e.strerror}")
      raise

  _describe_as_main(main)
  app.run(guarded, flags_parser=parse_flags)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag (an unknown name, a value outside an enum's) as one
  line and status 2 like every other user error, where absl prints two lines and exits 1."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(" ".join(str(e).split()))
  except BrokenPipeError:  # --help piped into `head`
    _reader_went_away()


def _reader_went_away() -> None:
  """The reader of our output went away (e.g. `| head`): stop quietly, as command-line tools
  do."""
  try:
    sys.stdout = open(os.devnull, "w")
  finally:
    os._exit(0)


def _describe_as_main(main) -> None:
  """An installed command runs a wrapper script as `__main__`, which has no docstring and
  defines no flags, so `--help` would print a bare usage line: give the wrapper the
  launcher's docstring and make the launcher's and the shared flags its key flags."""
  launcher = sys.modules.get(main.__module__)
  wrapper = sys.modules["__main__"]
  if launcher is None or launcher is wrapper:
    return  # run as a module or script: absl already describes it
  if not wrapper.__doc__:
    wrapper.__doc__ = launcher.__doc__
  flag_values = flags.FLAGS
  for module in (launcher.__name__, __name__):
    for flag in flag_values.get_flags_for_module(module):
      flag_values.register_key_flag_for_module(sys.argv[0], flag)


def summary_from_flag(path: str, backbone: str, data, max_epochs: int) -> dict:
  """--summary_from's summary, read and checked (another backbone or a format this version
  cannot read is one line), with a line on which of its rules carry to this data under this
  epoch cap and which it sets aside, and why."""
  from vmle_jax.memory import summaries

  try:
    doc = summaries.read_summary(path)
    summaries.check_backbone(doc, backbone, path)
  except ValueError as e:
    fail(f"--summary_from: {e}")
  stats = {k: v for k, v in data.fingerprint().items() if k not in ("name", "sha256")}
  apply, aside = summaries.placed_rules(doc, stats, max_epochs)
  learned = ", ".join((doc.get("provenance") or {}).get("datasets") or []) or "imports"
  print(
      f"summary {path} ({backbone}, version {doc.get('version')}, learned on {learned}): "
      f"applies {len(apply)} of {len(apply) + len(aside)} rules to {data.name}"
      + "".join(f"\n  applies: {r['rule']}" for r in apply)
      + "".join(f"\n  sets aside: {r['rule']} ({why})" for r, why in aside)
  )
  return doc


def fail(message: str) -> None:
  """Prints one clear line and exits with status 2 (no traceback for user errors)."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)
