"""Host presets (tpu_configs/*.py): mesh, lanes per device, batch size, dtype, eval chunks.

A preset file defines `get_config()` returning an ml_collections ConfigDict
with the fields below; `--preset=NAME` (a file in tpu_configs/) or
`--preset=path/to/file.py` loads one, and flags given explicitly override
its values.

  mesh_lanes, mesh_data  devices along the `lanes` and `data` axes (-1: the rest)
  lanes_per_device       lanes per device along the lanes axis
  batch_size             users per training step
  compute_dtype          float32 or bfloat16 matmuls (params and optimizer stay float32)
  eval_batch, item_chunk users and items per evaluation chunk
  multi_host             the preset expects jax.distributed (several processes)
"""

from __future__ import annotations

import importlib.util
import os

import jax
import numpy as np
from jax.sharding import Mesh

def _preset_dir() -> str:
  # tpu_configs/ sits at the top of the repository and installs as vmle_jax.tpu_configs.
  import vmle_jax.tpu_configs
  return os.path.dirname(os.path.abspath(vmle_jax.tpu_configs.__file__))
FIELDS = ("mesh_lanes", "mesh_data", "lanes_per_device", "batch_size", "compute_dtype",
          "eval_batch", "item_chunk", "multi_host")


def preset_names() -> list[str]:
  return sorted(f[:-3] for f in os.listdir(_preset_dir()) if f.endswith(".py") and f[0] != "_")


def load_preset(name_or_path: str):
  """The ConfigDict of a preset name (in tpu_configs/) or of a preset file path."""
  path = name_or_path if name_or_path.endswith(".py") else os.path.join(
      _preset_dir(), f"{name_or_path}.py")
  if not os.path.exists(path):
    raise ValueError(f"preset {name_or_path!r}: no such preset (known: "
                     f"{', '.join(preset_names()) or 'none'})")
  spec = importlib.util.spec_from_file_location(f"vmle_preset_{os.path.basename(path)[:-3]}",
                                                path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  missing = [f for f in FIELDS if f not in config]
  if missing:
    raise ValueError(f"preset {path}: missing fields {', '.join(missing)}")
  return config


def preset_mesh(config, devices=None) -> Mesh:
  """The (lanes, data) mesh a preset asks for, over the given (default: all) devices."""
  devices = np.asarray(devices if devices is not None else jax.devices()).reshape(-1)
  lanes, data = int(config.mesh_lanes), int(config.mesh_data)
  n = len(devices)
  if lanes == -1 and data == -1:
    raise ValueError("a preset may leave only one mesh axis at -1")
  if lanes == -1:
    lanes = n // data
  if data == -1:
    data = n // lanes
  if lanes * data != n:
    raise ValueError(f"preset mesh lanes={lanes} x data={data} does not cover the {n} devices")
  return Mesh(devices.reshape(lanes, data), ("lanes", "data"))
