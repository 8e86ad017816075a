"""One place applies precedence: config.resolve, and the launchers and the search space obey it."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from vmle_jax.config import MeshSpec, resolve
from vmle_jax.engine.presets import load_preset
from vmle_jax.recipes import RECIPES
from vmle_jax.search.space import SearchSpace

# A preset that differs from every default it touches.
PRESET = {
    "mesh_lanes": 4,
    "mesh_data": 2,
    "lanes_per_device": 16,
    "batch_size": 256,
    "compute_dtype": "bfloat16",
    "eval_batch": 2048,
    "item_chunk": 8192,
}
CE = RECIPES["sasrec-ce"]  # hidden 256, softmax, dropout 0.5, lr 3e-4; 200 epochs, patience 15

# (case, resolve() arguments, {field: (expected value, expected source)})
CASES = [
    (
        "dataclass defaults",
        {},
        {"hidden": (64, None), "batch_size": (128, None), "backbone": ("sasrec", None)},
    ),
    (
        "backbone defaults over dataclass",
        {"config_flags": {"backbone": "hstu"}},
        {
            "temperature": (0.05, "backbone"),
            "positions": ("relative", "backbone"),
            "backbone": ("hstu", "flag"),
        },
    ),
    (
        "recipe over backbone",
        {"recipe": "hstu-ssm"},
        {
            "num_negatives": (2048, "recipe"),
            "tie_embeddings": (False, "recipe"),
            "positions": ("relative", "backbone"),
        },
    ),
    (
        "preset over recipe",
        {"recipe": "sasrec-ce", "preset": PRESET},
        {"batch_size": (256, "preset"), "hidden": (256, "recipe")},
    ),
    (
        "flag over preset",
        {"recipe": "sasrec-ce", "preset": PRESET, "config_flags": {"batch_size": 64, "hidden": 32}},
        {"batch_size": (64, "flag"), "hidden": (32, "flag"), "loss": ("softmax", "recipe")},
    ),
]

SCHEDULE_CASES = [
    (
        "launcher default",
        {"launcher_schedule": {"max_epochs": 15}},
        {"max_epochs": (15, "launcher"), "patience": (10, None)},
    ),
    (
        "recipe over launcher",
        {"recipe": CE, "launcher_schedule": {"max_epochs": 15}},
        {"max_epochs": (200, "recipe"), "patience": (15, "recipe")},
    ),
    (
        "preset over recipe",
        {"recipe": CE, "preset": PRESET},
        {
            "compute_dtype": ("bfloat16", "preset"),
            "eval_batch": (2048, "preset"),
            "patience": (15, "recipe"),
        },
    ),
    (
        "flag over preset",
        {"recipe": CE, "preset": PRESET, "schedule_flags": {"max_epochs": 7, "eval_batch": 512}},
        {
            "max_epochs": (7, "flag"),
            "eval_batch": (512, "flag"),
            "patience": (15, "recipe"),
            "item_chunk": (8192, "preset"),
        },
    ),
]


@pytest.mark.parametrize("case,kwargs,expected", CASES, ids=[c[0] for c in CASES])
def test_config_precedence(case, kwargs, expected):
  r = resolve(**kwargs)
  for field, (value, source) in expected.items():
    assert getattr(r.config, field) == value, (case, field)
    assert r.sources.get(field) == source, (case, field, r.sources.get(field))


@pytest.mark.parametrize("case,kwargs,expected", SCHEDULE_CASES, ids=[c[0] for c in SCHEDULE_CASES])
def test_schedule_precedence(case, kwargs, expected):
  r = resolve(**kwargs)
  for field, (value, source) in expected.items():
    assert getattr(r.schedule, field) == value, (case, field)
    assert r.sources.get(field) == source, (case, field, r.sources.get(field))


def test_the_mesh_comes_from_the_preset_and_a_real_preset_file_resolves():
  assert resolve().mesh == MeshSpec()
  assert resolve(preset=PRESET).mesh == MeshSpec(lanes=4, data=2, lanes_per_device=16)
  r = resolve(preset=load_preset("tpu_v5e_16"))
  assert (r.config.batch_size, r.schedule.compute_dtype, r.mesh.data) == (256, "bfloat16", 2)


def test_bad_layers_are_errors_that_name_them():
  with pytest.raises(ValueError, match="contradicts the recipe"):
    resolve(recipe="hstu-ssm", config_flags={"backbone": "sasrec"})
  with pytest.raises(ValueError, match="not one of"):
    resolve(recipe="nope")
  with pytest.raises(ValueError, match="no field 'item_chunk'"):
    resolve(preset={k: v for k, v in PRESET.items() if k != "item_chunk"})


def test_the_search_space_starts_from_the_resolved_base_as_it_is():
  base = resolve(recipe="sasrec-ssm", preset=PRESET).config  # 2048 negatives, batch 256
  space = SearchSpace.for_backbone("sasrec", base=base, only=["lr", "num_negatives"], fixed={})
  assert space.base == base and space.default_config().batch_size == 256
  assert space.dims["num_negatives"].default == 2048  # outside the listed choices: joins them
  assert 2048 in space.dims["num_negatives"].values and space.validate({}) == base
  assert space.dims["lr"].default == base.lr


SWEEP = [
    sys.executable,
    "-m",
    "vmle_jax.launch.sweep",
    "--budget_trials=1",
    "--epochs=1",
    "--verbose_epochs=false",
    "--strategy=grid",
    "--dims=lr",
    "--max_len=10",
]


def _first_config(tmp_path, name, *flags, devices=1):
  env = dict(
      os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu"
  )
  out = subprocess.run(
      [
          *SWEEP,
          f"--db={tmp_path / 'm.sqlite'}",
          f"--study={name}",
          f"--workdir={tmp_path / name}",
          *flags,
      ],
      cwd=tmp_path,
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  conn = sqlite3.connect(tmp_path / "m.sqlite")
  ((config,),) = conn.execute(
      "SELECT t.config FROM trials t JOIN studies s ON s.id = t.study_id " "WHERE s.name = ?",
      (name,),
  ).fetchall()
  return json.loads(config)


def test_sweep_trains_at_the_preset_batch_size_and_preset_fields_override(tmp_path):
  tiny = ("--hidden=16", "--blocks=1", "--heads=1")
  assert (
      _first_config(tmp_path, "v5e", "--preset=tpu_v5e_16", *tiny, devices=16)["batch_size"] == 256
  )
  assert (
      _first_config(
          tmp_path, "v5e64", "--preset=tpu_v5e_16", "--preset.batch_size=64", *tiny, devices=16
      )["batch_size"]
      == 64
  )


def test_sweep_starts_from_a_recipe(tmp_path):
  c = _first_config(tmp_path, "ce", "--recipe=sasrec-ssm", "--num_negatives=64")
  assert (c["loss"], c["blocks"], c["tie_embeddings"], c["num_negatives"]) == (
      "sampled_softmax",
      1,
      False,
      64,
  )
