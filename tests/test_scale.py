"""Scale-out on CPU: presets and meshes, two-process jax.distributed, mid-bucket resume, bf16."""

import glob
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from vmle_jax.engine.presets import load_preset, preset_names

FAKE8 = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    JAX_PLATFORMS="cpu",
    PYTHONUNBUFFERED="1",
)


def test_every_preset_loads():
  assert {"cpu", "gpu_1x", "gpu_8x", "tpu_v4_8", "tpu_v5e_16"} <= set(preset_names())
  for name in preset_names():
    c = load_preset(name)
    assert c.compute_dtype in ("float32", "bfloat16") and c.lanes_per_device >= 1
  assert load_preset("tpu_v5e_16").batch_size == 256  # a change on top of the shared base
  with pytest.raises(ValueError, match="no such preset"):
    load_preset("tpu_v99")


MESH = textwrap.dedent("""
    import json, jax
    from vmle_jax.config import Schedule, TrialConfig
    from vmle_jax.data import leave_one_out, make_synthetic
    from vmle_jax.engine import Engine
    from vmle_jax.engine.lanes import lane_mesh
    from vmle_jax.engine.presets import load_preset, preset_mesh
    out = {"cpu": dict(preset_mesh(load_preset("cpu")).shape),
           "gpu_8x": dict(preset_mesh(load_preset("gpu_8x")).shape)}
    preset = load_preset("cpu")
    preset.mesh_lanes, preset.mesh_data = 4, 2
    mesh = preset_mesh(preset)
    out["custom"] = dict(mesh.shape)
    split = leave_one_out(make_synthetic(num_users=200, num_items=50, seed=3), 10)
    base = TrialConfig(hidden=16, blocks=1, heads=1, max_len=10, batch_size=64, num_negatives=8)
    configs = [base.replace(lr=1e-3 * (1 + i), seed=i) for i in range(4)]
    for name, m in (("lanes_x_data", mesh), ("one_device", lane_mesh(jax.devices()[:1]))):
      result = Engine(split, Schedule(max_epochs=2), log=None, mesh=m).train(configs)
      out[name] = [l.best_value for l in result.lanes]
    print(json.dumps(out))
""")


def test_preset_meshes_and_a_data_axis_on_eight_fake_devices(tmp_path):
  out = subprocess.run(
      [sys.executable, "-c", MESH],
      capture_output=True,
      text=True,
      env=FAKE8,
      timeout=600,
      cwd=tmp_path,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  res = json.loads(out.stdout.strip().splitlines()[-1])
  assert res["cpu"] == {"lanes": 8, "data": 1}
  assert res["gpu_8x"] == {"lanes": 8, "data": 1}
  assert res["custom"] == {"lanes": 4, "data": 2}
  np.testing.assert_allclose(res["lanes_x_data"], res["one_device"], atol=1e-4)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


SWEEP = [
    "--strategy=random",
    "--dims=lr,dropout",
    "--hidden=16",
    "--blocks=1",
    "--max_len=10",
    "--num_negatives=16",
    "--lanes=8",
    "--budget_trials=8",
    "--verbose_epochs=false",
]


def test_two_processes_form_one_mesh_and_only_process_0_writes(tmp_path):
  port = _free_port()
  env = dict(
      os.environ,
      XLA_FLAGS="--xla_force_host_platform_device_count=4",
      JAX_PLATFORMS="cpu",
      PYTHONUNBUFFERED="1",
  )
  procs = []
  for pid in (0, 1):
    cmd = [
        sys.executable,
        "-m",
        "vmle_jax.launch.sweep",
        *SWEEP,
        "--epochs=2",
        "--distributed",
        f"--coordinator_address=127.0.0.1:{port}",
        "--num_processes=2",
        f"--process_id={pid}",
        f"--db={tmp_path / f'p{pid}.sqlite'}",
        f"--workdir={tmp_path / f'w{pid}'}",
        "--study=mh",
    ]
    procs.append(
        subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    )
  outs = [p.communicate(timeout=900)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), outs[0][-3000:] + outs[1][-3000:]
  assert "8 cpu device(s)" in outs[0]  # one global mesh over both processes
  conn = sqlite3.connect(tmp_path / "p0.sqlite")
  assert conn.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0] == 8
  assert not (tmp_path / "p1.sqlite").exists()  # process 1 never opened a memory
  assert not (tmp_path / "w1").exists()


def _sweep(tmp_path, name, *extra, wait=True):
  cmd = [
      sys.executable,
      "-m",
      "vmle_jax.launch.sweep",
      *SWEEP[:-2],
      "--lanes=2",
      "--budget_trials=2",
      "--verbose_epochs=true",
      "--epochs=8",
      "--patience=8",
      "--checkpoint_every=1",
      f"--db={tmp_path / (name + '.sqlite')}",
      f"--workdir={tmp_path / name}",
      "--study=ck",
      *extra,
  ]
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  if not wait:
    return subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
  return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def _values(db):
  conn = sqlite3.connect(db)
  return [
      json.loads(v)["NDCG@10"]
      for (v,) in conn.execute(
          "SELECT valid FROM trials WHERE status NOT IN ('running', 'interrupted') ORDER BY number"
      )
  ]


def test_a_killed_sweep_resumes_from_its_last_checkpoint_epoch(tmp_path):
  proc = _sweep(tmp_path, "killed", wait=False)
  deadline = time.time() + 300
  epoch = 0
  while time.time() < deadline and proc.poll() is None:
    # Orbax renames a step's directory to its number once the save is complete.
    steps = [
        int(os.path.basename(p))
        # buckets/<bucket>/<epoch>, or buckets/<bucket>/lane-<i>/<epoch> with lanes in series
        for p in glob.glob(str(tmp_path / "killed" / "buckets" / "**" / "*"), recursive=True)
        if os.path.basename(p).isdigit()
    ]
    epoch = max(steps, default=0)
    if epoch >= 3:
      break
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert epoch >= 3, "no checkpoint appeared before the kill"
  out = _sweep(tmp_path, "killed", "--resume")
  assert out.returncode == 0, out.stdout + out.stderr
  assert "resuming the bucket from its checkpoint after epoch" in out.stdout
  first = [l for l in out.stdout.splitlines() if "epoch " in l and "/8" in l][0]
  assert "epoch   1/8" not in first  # it did not start over
  assert not glob.glob(str(tmp_path / "killed" / "buckets" / "*"))  # cleaned up
  straight = _sweep(tmp_path, "straight")
  assert straight.returncode == 0
  np.testing.assert_allclose(
      _values(tmp_path / "killed.sqlite"), _values(tmp_path / "straight.sqlite"), atol=1e-6
  )


def test_bfloat16_matmuls_train_and_the_profile_is_written(tmp_path):
  from vmle_jax.config import Schedule, TrialConfig
  from vmle_jax.data import leave_one_out, make_synthetic
  from vmle_jax.engine import Engine

  split = leave_one_out(make_synthetic(num_users=300, num_items=60, seed=4), 12)
  cfg = TrialConfig(hidden=16, blocks=1, heads=2, max_len=12, num_negatives=16, lr=3e-3)
  f32 = Engine(split, Schedule(max_epochs=4), log=None).train([cfg])
  bf16 = Engine(
      split,
      Schedule(max_epochs=4, compute_dtype="bfloat16"),
      log=None,
      profile_dir=str(tmp_path / "prof"),
  ).train([cfg])
  assert np.isfinite(bf16.lanes[0].curve[-1]["loss"])
  assert bf16.lanes[0].best_value > 0.5 * f32.lanes[0].best_value
  assert glob.glob(str(tmp_path / "prof" / "**" / "*.xplane.pb"), recursive=True)
