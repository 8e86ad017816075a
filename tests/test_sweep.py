"""Search space, strategies and vmle-sweep, including kill -9 and --resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from vmle_jax.config import TrialConfig
from vmle_jax.search.space import GRID_DIMS, SearchSpace, SpaceError
from vmle_jax.search.strategies import make_strategy


def test_space_validation_lists_every_problem():
  space = SearchSpace.for_backbone("sasrec")
  with pytest.raises(SpaceError) as e:
    space.validate({"lr": 5.0, "hidden": 33, "colour": "red", "blocks": 2.5})
  msg = str(e.value)
  assert "lr=5.0 is outside [0.0001, 0.01]" in msg
  assert "hidden=33 is not one of [32, 64, 128, 256]" in msg
  assert "'colour' is not a parameter" in msg
  assert "blocks=2.5 is not an integer" in msg
  cfg = space.validate({"lr": 0.00123456, "hidden": 128})
  assert cfg.lr == 0.001235 and cfg.hidden == 128  # rounded to 4 significant digits
  assert TrialConfig.from_dict(json.loads(cfg.canonical_json())) == cfg
  fixed = SearchSpace.for_backbone("sasrec", fixed={"loss": "bce"})
  assert "loss" not in fixed.dims and fixed.base.loss == "bce"
  with pytest.raises(SpaceError, match="fixed"):
    fixed.validate({"loss": "softmax"})


@pytest.mark.parametrize("name", ["grid", "random", "random-packed", "tpe"])
def test_strategies_start_from_the_default(name):
  space = SearchSpace.for_backbone("sasrec", only=["hidden", "lr", "dropout", "weight_decay"])
  strategy = make_strategy(name, space, seed=1, lanes=4)
  done = set()
  first = strategy.ask(4, done)
  assert first[0].config == space.default_config()
  assert len({p.config.canonical_json() for p in first}) == 4
  if name == "random-packed":  # one program per batch: the lanes fill
    assert len({p.config.static_signature() for p in first}) == 1
  for p in first:
    strategy.tell(p.config, float(np.random.default_rng(0).random()))
  second = strategy.ask(4, done)
  assert not {p.config.canonical_json() for p in first} & {p.config.canonical_json() for p in second}


def test_random_draws_every_trial_independently():
  """Random search varies the structure trial by trial; the packed variant per batch."""
  space = SearchSpace.for_backbone("sasrec")
  independent = make_strategy("random", space, seed=0).ask(16, set())[1:]
  packed = make_strategy("random-packed", space, seed=0).ask(8, set())[1:]
  assert len({p.config.static_signature() for p in independent}) >= 12
  assert len({p.config.loss for p in independent}) == 3
  assert len({p.config.static_signature() for p in packed}) == 1


def test_grid_covers_the_loss_and_does_not_hold_one_structure():
  space = SearchSpace.for_backbone("sasrec", only=list(GRID_DIMS["sasrec"]))
  assert "loss" in space.dims
  points = [p.config for p in make_strategy("grid", space, seed=0).ask(16, set())]
  assert len({c.loss for c in points}) == 3
  assert len({c.hidden for c in points[1:9]}) >= 3


def _tpe_second_batch(values):
  space = SearchSpace.for_backbone("sasrec", only=["hidden", "lr", "dropout", "loss"])
  tpe = make_strategy("tpe", space, seed=0, lanes=4)
  done = set()
  first = tpe.ask(4, done)
  for p, v in zip(first, values):
    tpe.tell(p.config, v)
  return tpe, [p.config for p in tpe.ask(4, done)]


def test_tpe_leaves_its_startup_phase_after_one_batch():
  """With the startup set to the lane count, the second batch depends on the results."""
  tpe, a = _tpe_second_batch([0.1, 0.2, 0.3, 0.4])
  assert tpe.study.sampler._n_startup_trials == 4
  _, b = _tpe_second_batch([0.4, 0.3, 0.2, 0.1])
  _, c = _tpe_second_batch([0.1, 0.2, 0.3, 0.4])
  assert a == c  # seeded: the same results give the same proposals
  assert a != b  # and other results give other proposals: the model is used


def test_random_and_grid_replay_the_same_stream():
  space = SearchSpace.for_backbone("sasrec")
  for name in ("random", "random-packed", "grid"):
    a = [p.config for p in make_strategy(name, space, seed=3).ask(6, set())]
    b = [p.config for p in make_strategy(name, space, seed=3).ask(6, set())]
    assert a == b


SWEEP_ARGS = ["--strategy=random", "--dims=lr,dropout", "--hidden=16", "--blocks=1",
              "--max_len=10", "--num_negatives=16", "--epochs=3", "--lanes=2",
              "--budget_trials=8", "--verbose_epochs=false"]


def _sweep(tmp_path, *extra, wait=True):
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  cmd = [sys.executable, "-m", "vmle_jax.launch.sweep", *SWEEP_ARGS,
         f"--db={tmp_path / 'm.sqlite'}", f"--workdir={tmp_path / 'w'}", "--study=s", *extra]
  if not wait:
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
  return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def _finished(db):
  if not os.path.exists(db):
    return []
  conn = sqlite3.connect(db, timeout=30)
  try:
    rows = conn.execute("SELECT config, status, valid FROM trials WHERE status != 'running' "
                        "ORDER BY number").fetchall()
  except sqlite3.OperationalError:
    rows = []
  conn.close()
  return rows


def test_kill_9_then_resume_keeps_every_finished_trial(tmp_path):
  db = str(tmp_path / "m.sqlite")
  proc = _sweep(tmp_path, wait=False)
  deadline = time.time() + 400
  while len(_finished(db)) < 4 and time.time() < deadline and proc.poll() is None:
    time.sleep(0.5)
  before = _finished(db)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert 4 <= len(before) < 8, "the sweep must be killed mid-way"
  out = _sweep(tmp_path, "--resume")
  assert out.returncode == 0, out.stdout + out.stderr
  assert "finished trials kept" in out.stdout
  after = _finished(db)
  assert len(after) == 8
  assert len({row[0] for row in after}) == 8  # nothing duplicated
  assert after[:len(before)] == before  # nothing lost or changed
  assert (tmp_path / "w" / "trials.png").exists() and (tmp_path / "w" / "trials.csv").exists()
  summary = json.load(open(tmp_path / "w" / "summary.json"))
  assert summary["trials"] == 8 and "NDCG@10" in summary["best_test"]
  # Starting the same study again without --resume is refused with a clear message.
  again = _sweep(tmp_path)
  assert again.returncode == 2 and "--resume" in again.stderr
