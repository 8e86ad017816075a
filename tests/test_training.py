"""End to end on the synthetic default: learning, early stopping, divergence, the launcher."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data import leave_one_out, make_synthetic
from vmle_jax.engine import Engine
from vmle_jax.eval.baselines import popularity_metrics
from vmle_jax.engine.checkpoint import load_params
from vmle_jax.training import train_and_evaluate

TINY = dict(hidden=32, blocks=1, heads=1, max_len=20)


def test_synthetic_default_beats_popularity_quickly(tmp_path):
  data = make_synthetic()
  cfg = TrialConfig(
      **TINY, loss="sampled_softmax", num_negatives=64, lr=3e-3, dropout=0.1, attn_dropout=0.1
  )
  results = train_and_evaluate(
      cfg, data, Schedule(max_epochs=12, patience=3), str(tmp_path), log=lambda s: None
  )
  pop = popularity_metrics(leave_one_out(data, 20))["NDCG@10"]
  assert results["valid"]["NDCG@10"] > 2 * pop + 0.05, (results["valid"], pop)
  # The NDCG rises over epochs and the artifacts are written.
  curve = [p["NDCG@10"] for p in results["curve"]]
  assert curve[-1] > curve[0]
  saved = json.load(open(tmp_path / "results.json"))
  assert saved["test"]["NDCG@10"] == results["test"]["NDCG@10"]
  assert "history not excluded" in saved["protocol"]
  params = load_params(results["checkpoint"])
  assert params["params"]["tables"]["items"]["embedding"].shape == (data.num_items + 1, 32)


def test_early_stopping_and_divergence_are_per_lane():
  data = make_synthetic(num_users=300, num_items=80, seed=5)
  split = leave_one_out(data, 20)
  engine = Engine(split, Schedule(max_epochs=6, patience=2), log=None)
  good = TrialConfig(**TINY, lr=1e-3)
  bad = good.replace(lr=1e12, seed=1)  # float32 overflows in the first epoch
  result = engine.train([good, bad])
  assert result.lanes[1].status == "diverged" and result.lanes[1].stopped_epoch is not None
  assert result.lanes[0].status in ("finished", "stopped")
  assert np.isfinite(result.lanes[0].best_value)
  alone = engine.train([good])
  assert alone.lanes[0].best_value == pytest.approx(result.lanes[0].best_value, abs=1e-4)


def _cli(*args, cwd):
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  return subprocess.run(
      [sys.executable, "-m", "vmle_jax.launch.train", *args],
      cwd=cwd,
      capture_output=True,
      text=True,
      timeout=300,
      env=env,
  )


def test_vmle_train_cli_runs_and_writes_results(tmp_path):
  out = _cli(
      "--epochs=2",
      "--hidden=16",
      "--blocks=1",
      "--max_len=10",
      f"--workdir={tmp_path / 'run'}",
      cwd=tmp_path,
  )
  assert out.returncode == 0, out.stderr
  assert "epoch   1/2" in out.stdout and "ETA" in out.stdout
  assert "test   HR@5" in out.stdout
  assert os.path.exists(tmp_path / "run" / "results.json")
  assert os.path.exists(tmp_path / "run" / "curve.csv")
  assert os.path.exists(tmp_path / "run" / "curve.png")


def test_vmle_train_bad_flags_are_named(tmp_path):
  out = _cli("--loss=hinge", cwd=tmp_path)
  assert out.returncode != 0 and "--loss" in out.stderr and "sampled_softmax" in out.stderr
  out = _cli("--dataset=nowhere.txt", cwd=tmp_path)
  assert out.returncode == 2 and "nowhere.txt" in out.stderr and "Traceback" not in out.stderr
  out = _cli("--hidden=30", "--heads=4", cwd=tmp_path)
  assert out.returncode == 2 and "divisible" in out.stderr
  bad = tmp_path / "bad.txt"
  bad.write_text("1 1 2 3\n2 4 x 6\n")
  out = _cli(f"--dataset={bad}", cwd=tmp_path)
  assert out.returncode == 2 and "bad.txt line 2" in out.stderr
