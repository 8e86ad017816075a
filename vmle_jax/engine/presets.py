"""Host presets (tpu_configs/*.py): ml_collections config files read as ml_collections reads them.

A preset file's `get_config()` returns a ConfigDict with the fields of
`tpu_configs/base.py` (the CPU host), changed where the host differs:

  mesh_lanes, mesh_data  devices along the `lanes` and `data` axes (-1: the rest)
  lanes_per_device       lanes per device along the lanes axis
  batch_size             users per training step
  compute_dtype          float32 or bfloat16 matmuls (params and optimizer stay float32)
  eval_batch, item_chunk users and items per evaluation chunk

The launchers take `--preset=NAME` (a file in tpu_configs/) or
`--preset=path/to/file.py`, and any field on the command line
(`--preset.lanes_per_device=64`), through `ml_collections.config_flags`;
`vmle_jax.config.resolve` decides what the preset's values override.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import flags
from jax.sharding import Mesh
from ml_collections import config_flags

from vmle_jax.config import PRESET_FIELDS, MeshSpec


def _preset_dir() -> str:
  # tpu_configs/ sits at the top of the repository and installs as vmle_jax.tpu_configs.
  import vmle_jax.tpu_configs

  return os.path.dirname(os.path.abspath(vmle_jax.tpu_configs.__file__))


def preset_names() -> list[str]:
  return sorted(
      f[:-3]
      for f in os.listdir(_preset_dir())
      if f.endswith(".py") and f[0] != "_" and f != "base.py"
  )


def preset_path(name_or_path: str) -> str:
  """The file of a preset name (in tpu_configs/) or path; ValueError naming the known ones."""
  path = (
      name_or_path
      if name_or_path.endswith(".py")
      else os.path.join(_preset_dir(), f"{name_or_path}.py")
  )
  if not os.path.exists(path):
    raise ValueError(
        f"preset {name_or_path[:80]!r}: no such preset (known: "
        f"{', '.join(preset_names()) or 'none'}, or a path to a .py file)"
    )
  return path


class PresetFileParser(flags.ArgumentParser):
  """ml_collections' config-file parser (that of `config_flags.DEFINE_config_file`), which
  also takes a preset's bare name and checks that every preset field is there."""

  def __init__(self, file_parser=None):
    if file_parser is None:  # the parser DEFINE_config_file builds, without touching FLAGS
      scratch = flags.FlagValues()
      config_flags.DEFINE_config_file("preset", None, flag_values=scratch, sys_argv=["x"])
      file_parser = scratch["preset"].parser
    self.file_parser = file_parser

  def parse(self, argument):
    if not isinstance(argument, str):
      return argument
    config = self.file_parser.parse(preset_path(argument))
    missing = [f for f in PRESET_FIELDS if f not in config]
    if missing:
      raise ValueError(f"preset {argument}: missing fields {', '.join(missing)}")
    return config

  def flag_type(self) -> str:
    return self.file_parser.flag_type()


def load_preset(name_or_path: str):
  """The (locked) ConfigDict of a preset, as `--preset=name_or_path` would give it."""
  return PresetFileParser().parse(name_or_path)


def mesh_spec(preset) -> MeshSpec:
  return MeshSpec(
      lanes=int(preset.mesh_lanes),
      data=int(preset.mesh_data),
      lanes_per_device=int(preset.lanes_per_device),
  )


def build_mesh(spec: MeshSpec, devices=None) -> Mesh:
  """The (lanes, data) mesh of `spec` over the given (default: all) devices."""
  devices = np.asarray(devices if devices is not None else jax.devices()).reshape(-1)
  lanes, data = int(spec.lanes), int(spec.data)
  n = len(devices)
  if lanes == -1 and data == -1:
    raise ValueError("a preset may leave only one mesh axis at -1")
  if lanes == -1:
    lanes = n // data
  if data == -1:
    data = n // lanes
  if lanes < 1 or data < 1 or lanes * data != n:
    raise ValueError(f"preset mesh lanes={lanes} x data={data} does not cover the {n} devices")
  return Mesh(devices.reshape(lanes, data), ("lanes", "data"))


def preset_mesh(preset, devices=None) -> Mesh:
  """The mesh a preset asks for."""
  return build_mesh(mesh_spec(preset), devices)
