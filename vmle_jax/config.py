"""Trial configuration: one frozen dataclass, split into static and dynamic parts,
and `resolve`, the one place where defaults, recipes, presets and flags meet.

A trial is fully described by a `TrialConfig`. Fields that change array shapes
or the compiled program are *static* (they form the static signature that
buckets trials into one jit); the others are *dynamic* and reach the compiled
program as traced per-lane values, so lanes with different learning rates or
dropout rates share one program. `resolve` turns the layers a user can set
(backbone, recipe, host preset, explicit flags) into the trial config, the
schedule and the mesh of a run; every launcher calls it, nothing else
applies precedence.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

BACKBONES = ("sasrec", "hstu")
LOSSES = ("bce", "sampled_softmax", "softmax")
NORMS = ("pre", "post")
FFNS = ("gelu", "relu", "swiglu")
POSITIONS = ("learned", "relative", "rope")
ATTN_NORMS = ("max_len", "count")
COMPUTE_DTYPES = ("float32", "bfloat16")
# How a bucket's lanes run: vmapped together, one after another, or chosen by the device.
LANE_EXECUTIONS = ("auto", "vmap", "serial")


@dataclasses.dataclass(frozen=True)
class TrialConfig:
  """Everything that defines one training run of one backbone.

  Static (program shape): backbone, hidden, blocks, heads, max_len, ffn,
  ffn_mult, norm, tie_embeddings, scale_embeddings, positions, l2_norm,
  linear_dim, attention_dim, attn_norm, time_bias, time_buckets, loss,
  num_negatives, batch_size. (ffn, ffn_mult and norm are SASRec's;
  linear_dim, attention_dim, attn_norm and the time bias HSTU's.)
  Dynamic (traced per lane): lr, weight_decay, dropout, attn_dropout, beta1,
  beta2, init_std, temperature, param_ema, seed.
  """

  backbone: str = "sasrec"
  # --- static: model shape and program ---
  hidden: int = 64
  blocks: int = 2
  heads: int = 1
  max_len: int = 50
  ffn: str = "gelu"
  ffn_mult: int = 1
  norm: str = "pre"
  tie_embeddings: bool = True
  scale_embeddings: bool = True
  positions: str = "learned"
  l2_norm: bool = False
  linear_dim: int = 32
  attention_dim: int = 32
  attn_norm: str = "max_len"
  time_bias: bool = True
  time_buckets: int = 128
  loss: str = "sampled_softmax"
  num_negatives: int = 256
  batch_size: int = 128
  # --- dynamic: traced per lane ---
  lr: float = 1e-3
  weight_decay: float = 0.0
  dropout: float = 0.2
  attn_dropout: float = 0.2
  beta1: float = 0.9
  beta2: float = 0.98
  init_std: float = 0.02
  temperature: float = 1.0
  param_ema: float = 0.0
  seed: int = 0

  def __post_init__(self):
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{f.name}={v}: must be a finite number")
    _check_choice("backbone", self.backbone, BACKBONES)
    _check_choice("loss", self.loss, LOSSES)
    _check_choice("norm", self.norm, NORMS)
    _check_choice("ffn", self.ffn, FFNS)
    _check_choice("positions", self.positions, POSITIONS)
    _check_choice("attn_norm", self.attn_norm, ATTN_NORMS)
    for name in (
        "hidden",
        "blocks",
        "heads",
        "max_len",
        "ffn_mult",
        "num_negatives",
        "batch_size",
        "linear_dim",
        "attention_dim",
        "time_buckets",
    ):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"{name}={getattr(self, name)}: must be a positive integer")
    if self.hidden % self.heads:
      raise ValueError(f"hidden={self.hidden} is not divisible by heads={self.heads}")
    for name in ("dropout", "attn_dropout"):
      v = getattr(self, name)
      if not 0.0 <= v < 1.0:
        raise ValueError(f"{name}={v}: must be in [0, 1)")
    if self.temperature <= 0:
      raise ValueError(f"temperature={self.temperature}: must be positive")
    if self.positions == "rope" and (self.hidden // self.heads) % 2 and self.backbone == "sasrec":
      raise ValueError(
          f"positions=rope needs an even head size; hidden={self.hidden} / "
          f"heads={self.heads} is odd"
      )
    if self.init_std <= 0:
      raise ValueError(f"init_std={self.init_std}: must be positive")
    if self.lr <= 0:
      raise ValueError(f"lr={self.lr}: must be positive")
    if self.weight_decay < 0:
      raise ValueError(f"weight_decay={self.weight_decay}: must be >= 0")
    for name in ("beta1", "beta2", "param_ema"):
      v = getattr(self, name)
      if not 0.0 <= v < 1.0:
        raise ValueError(f"{name}={v}: must be in [0, 1)")

  # ---- the static / dynamic split ----
  def static_signature(self) -> "TrialConfig":
    """This config with every dynamic field replaced by its default.

    Hashable; two trials share a compiled program iff their signatures are
    equal. Model code only ever sees this view, so it cannot bake a dynamic
    value into the program by accident.
    """
    return dataclasses.replace(self, **{f: _DEFAULTS[f] for f in DYNAMIC_FIELDS})

  def dynamic_values(self) -> dict[str, float]:
    """The traced per-lane values (floats; the seed is handled by the engine)."""
    return {f: float(getattr(self, f)) for f in DYNAMIC_FIELDS if f != "seed"}

  def signature_key(self) -> str:
    """A short, stable string for the static signature (stored with each trial)."""
    sig = self.static_signature()
    return json.dumps({f: getattr(sig, f) for f in STATIC_FIELDS}, sort_keys=True)

  # ---- canonical JSON (a trial's identity) ----
  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def canonical_json(self) -> str:
    return canonical_json(self.to_dict())

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "TrialConfig":
    unknown = set(d) - set(FIELD_NAMES)
    if unknown:
      raise ValueError(f"unknown config fields {sorted(unknown)}; known: {', '.join(FIELD_NAMES)}")
    return cls(**d)

  def replace(self, **changes) -> "TrialConfig":
    return dataclasses.replace(self, **changes)


def canonical_json(value) -> str:
  """The one canonical JSON of a config: sorted keys, no spaces. A trial's identity
  (TrialConfig.canonical_json, memory's Trial.config_key) and every lookup by config use it."""
  return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _check_choice(name, value, allowed):
  if value not in allowed:
    raise ValueError(f"{name}={value!r}: not one of {', '.join(map(str, allowed))}")


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TrialConfig))
DYNAMIC_FIELDS = (
    "lr",
    "weight_decay",
    "dropout",
    "attn_dropout",
    "beta1",
    "beta2",
    "init_std",
    "temperature",
    "param_ema",
    "seed",
)
STATIC_FIELDS = tuple(f for f in FIELD_NAMES if f not in DYNAMIC_FIELDS)
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrialConfig)}


@dataclasses.dataclass(frozen=True)
class Schedule:
  """How long and how a bucket of trials trains (shared by all its lanes)."""

  max_epochs: int = 200
  patience: int = 10  # epochs (in evaluations) without validation NDCG@10 gain
  eval_every: int = 1
  data_seed: int = 0  # batch order: the same for every lane of a bucket
  eval_batch: int = 1024  # users per evaluation chunk
  item_chunk: int = 4096  # items scored at once in full ranking
  exclude_history: bool = False  # mask the user's seen items when ranking
  packed: bool = True  # pack short users into shared rows (same math, less padding work)
  compute_dtype: str = "float32"  # matmuls in float32 or bfloat16 (params, optimizer: float32)
  checkpoint_every: int = 0  # save a bucket's lane states every N epochs (0: never)
  # vmap: a bucket's lanes train together in one vmapped program; serial: one after
  # another with the one-lane program (the same results); auto: serial on a single CPU
  # device, where vmapped lanes measured slower (bench/sweep.py), vmap elsewhere.
  lane_execution: str = "auto"

  def __post_init__(self):
    if self.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(
          f"compute_dtype={self.compute_dtype!r}: not one of " f"{', '.join(COMPUTE_DTYPES)}"
      )
    if self.lane_execution not in LANE_EXECUTIONS:
      raise ValueError(
          f"lane_execution={self.lane_execution!r}: not one of {', '.join(LANE_EXECUTIONS)}"
      )


# One line per field: what it is and why one would change it (shown by --helpfull).
FIELD_HELP = {
    "backbone": "Sequential recommender to train.",
    "hidden": "Embedding and hidden size D (static: changes parameter shapes).",
    "blocks": "Number of transformer blocks.",
    "heads": "Attention heads per block (must divide hidden).",
    "max_len": "Most recent items kept per user; longer histories are cut, shorter left-padded.",
    "ffn": "Feed-forward activation.",
    "ffn_mult": "Feed-forward inner size as a multiple of hidden (original SASRec: 1).",
    "norm": "LayerNorm placement: pre (before each sub-layer, plus a final LN) or post.",
    "tie_embeddings": "Score items with the input embedding table (true) or a separate output table.",
    "scale_embeddings": "Multiply input item embeddings by sqrt(hidden) (original SASRec).",
    "init_std": "Standard deviation of the initial item and position embeddings.",
    "l2_norm": "L2-normalise query and item vectors before the dot product (HSTU's default).",
    "temperature": "Scores are divided by this; with l2_norm, small values (0.05) sharpen them.",
    "linear_dim": "HSTU: size of U and V per head.",
    "attention_dim": "HSTU: size of Q and K per head.",
    "attn_norm": "HSTU: the pointwise attention is divided by max_len (the reference) or by "
    "the number of attended items (count).",
    "time_bias": "HSTU: add a learned bias per time-gap bucket when the data has timestamps.",
    "time_buckets": "HSTU: number of log-spaced time-gap buckets.",
    "positions": "Positional scheme: learned absolute positions counted from the most recent "
    "item, a learned relative bias in attention (HSTU's), or rotary (rope).",
    "loss": "bce: one sampled negative per position (original SASRec); sampled_softmax: "
    "softmax over the positive and num_negatives shared uniform negatives; "
    "softmax: full cross-entropy over all items.",
    "num_negatives": "Negatives per position for bce, shared negatives per batch for sampled_softmax.",
    "batch_size": "Users per training step.",
    "lr": "AdamW learning rate.",
    "weight_decay": "Decoupled AdamW weight decay on matrices and embeddings.",
    "dropout": "Dropout on embeddings, residual branches and the feed-forward layer.",
    "attn_dropout": "Dropout on attention probabilities.",
    "beta1": "Adam beta1.",
    "beta2": "Adam beta2 (original SASRec: 0.98).",
    "param_ema": "Validate, select and test an exponential moving average of the parameters "
    "with this decay per step (0: the parameters themselves).",
    "seed": "Seed of parameter init, dropout and negative sampling for this trial.",
}

CHOICES = {
    "backbone": BACKBONES,
    "loss": LOSSES,
    "norm": NORMS,
    "ffn": FFNS,
    "positions": POSITIONS,
    "attn_norm": ATTN_NORMS,
}

# Per-backbone defaults that differ from the dataclass defaults (SASRec's).
BACKBONE_DEFAULTS = {
    "sasrec": {},
    "hstu": {
        "positions": "relative",
        "l2_norm": True,
        "temperature": 0.05,
        "heads": 2,
        "linear_dim": 32,
        "attention_dim": 32,
        "dropout": 0.2,
        "attn_dropout": 0.0,
        "loss": "sampled_softmax",
        "num_negatives": 256,
    },
}


def backbone_config(backbone: str, **overrides) -> TrialConfig:
  """A TrialConfig with the backbone's defaults, then `overrides`."""
  _check_choice("backbone", backbone, BACKBONES)
  return TrialConfig(backbone=backbone, **{**BACKBONE_DEFAULTS[backbone], **overrides})


@dataclasses.dataclass(frozen=True)
class MeshSpec:
  """How a bucket's lanes lie on the devices: devices along the `lanes` and `data` mesh
  axes (-1: all the others) and lanes per device (None: a memory estimate decides)."""

  lanes: int = -1
  data: int = 1
  lanes_per_device: int | None = None


@dataclasses.dataclass(frozen=True)
class Resolved:
  """A run's trial config, schedule and mesh, and the layer each set field came from."""

  config: TrialConfig
  schedule: Schedule
  mesh: MeshSpec
  sources: dict  # field -> "backbone" | "recipe" | "preset" | "flag" | "launcher"


# What a host preset (tpu_configs/) sets, and where each field goes.
PRESET_CONFIG_FIELDS = ("batch_size",)
PRESET_SCHEDULE_FIELDS = ("compute_dtype", "eval_batch", "item_chunk")
PRESET_MESH_FIELDS = {
    "mesh_lanes": "lanes",
    "mesh_data": "data",
    "lanes_per_device": "lanes_per_device",
}
PRESET_FIELDS = (*PRESET_CONFIG_FIELDS, *PRESET_SCHEDULE_FIELDS, *PRESET_MESH_FIELDS)


def resolve(
    recipe=None,
    preset=None,
    config_flags: dict | None = None,
    schedule_flags: dict | None = None,
    launcher_schedule: dict | None = None,
) -> Resolved:
  """The trial config, schedule and mesh from every layer, later layers winning.

  Trial config: dataclass defaults <- backbone defaults <- recipe <- preset
  (batch size) <- explicit flags. Schedule: dataclass defaults <- the
  launcher's own defaults (e.g. vmle-tune's 15 epochs) <- recipe <- preset
  (dtype, evaluation chunks) <- explicit flags. `recipe` is a name or a
  `recipes.Recipe`; `preset` any mapping or object with the preset fields
  (an ml_collections ConfigDict from tpu_configs/); the flag dicts hold only
  values given explicitly, by field name. Raises ValueError on a bad value
  or a backbone that contradicts the recipe's.
  """
  config_flags, schedule_flags = dict(config_flags or {}), dict(schedule_flags or {})
  if isinstance(recipe, str):
    from vmle_jax.recipes import get_recipe

    recipe = get_recipe(recipe)
  sources: dict[str, str] = {}

  def layer(values: dict, name: str, into: dict) -> None:
    for k, v in values.items():
      into[k] = v
      sources[k] = name

  backbone = config_flags.get("backbone") or (recipe.config.backbone if recipe else "sasrec")
  if recipe is not None and recipe.config.backbone != backbone:
    raise ValueError(
        f"backbone={backbone!r} contradicts the recipe, a "
        f"{recipe.config.backbone} recipe; leave out --backbone"
    )
  _check_choice("backbone", backbone, BACKBONES)
  config: dict[str, Any] = dict(_DEFAULTS, backbone=backbone)
  layer(BACKBONE_DEFAULTS[backbone], "backbone", config)
  if recipe is not None:
    layer(_changed(recipe.config.to_dict(), config), "recipe", config)
  preset_values = {} if preset is None else {f: _preset_field(preset, f) for f in PRESET_FIELDS}
  layer(
      {k: int(preset_values[k]) for k in PRESET_CONFIG_FIELDS if preset is not None},
      "preset",
      config,
  )
  layer(config_flags, "flag", config)

  schedule = dataclasses.asdict(Schedule())
  layer(_changed(launcher_schedule or {}, schedule), "launcher", schedule)
  if recipe is not None:
    layer(_changed(dataclasses.asdict(recipe.schedule), schedule), "recipe", schedule)
  if preset is not None:
    layer(
        {
            k: preset_values[k] if k == "compute_dtype" else int(preset_values[k])
            for k in PRESET_SCHEDULE_FIELDS
        },
        "preset",
        schedule,
    )
  layer(schedule_flags, "flag", schedule)

  mesh = (
      MeshSpec()
      if preset is None
      else MeshSpec(
          **{field: int(preset_values[name]) for name, field in PRESET_MESH_FIELDS.items()}
      )
  )
  return Resolved(
      config=TrialConfig(**config), schedule=Schedule(**schedule), mesh=mesh, sources=sources
  )


def _changed(values: dict, current: dict) -> dict:
  """The entries of `values` that differ from `current` (a layer's own settings)."""
  return {k: v for k, v in values.items() if current.get(k) != v}


def _preset_field(preset, name: str):
  value = preset.get(name) if isinstance(preset, dict) else getattr(preset, name, None)
  if value is None:
    raise ValueError(
        f"the preset has no field {name!r} (a preset sets " f"{', '.join(PRESET_FIELDS)})"
    )
  return value
