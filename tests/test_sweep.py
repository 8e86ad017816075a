"""Search space, strategies and vmle-sweep, including kill -9 and --resume."""

import json
import os
import signal
import sqlite3
import time

import numpy as np
import pytest

from vmle_jax.config import TrialConfig
from vmle_jax.search.space import GRID_DIMS, SearchSpace, SpaceError
from vmle_jax.search.strategies import make_strategy

from launcher import TINY_ARGS, run_launcher


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
  assert not {p.config.canonical_json() for p in first} & {
      p.config.canonical_json() for p in second
  }


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


SWEEP_ARGS = ["--strategy=random", "--dims=lr,dropout", *TINY_ARGS]


def _sweep(tmp_path, *extra, wait=True):
  return run_launcher(tmp_path, "sweep", SWEEP_ARGS, "s", *extra, wait=wait)


def _finished(db):
  if not os.path.exists(db):
    return []
  conn = sqlite3.connect(db, timeout=30)
  try:
    rows = conn.execute(
        "SELECT config, status, valid FROM trials WHERE status NOT IN "
        "('running', 'interrupted') ORDER BY number"
    ).fetchall()
  except sqlite3.OperationalError:
    rows = []
  conn.close()
  return rows


def test_kill_9_then_resume_keeps_every_finished_trial(tmp_path):
  db = str(tmp_path / "m.sqlite")
  proc = _sweep(tmp_path, wait=False)
  # After compiling, a batch of two tiny lanes takes a fraction of a second: poll often,
  # freeze the sweep as soon as its first batch is stored, read what it kept, then kill.
  deadline = time.time() + 400
  while len(_finished(db)) < 2 and time.time() < deadline and proc.poll() is None:
    time.sleep(0.02)
  proc.send_signal(signal.SIGSTOP)
  before = _finished(db)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert 2 <= len(before) < 8, "the sweep must be killed mid-way"
  # The killed process left its lease; it is stale (dead pid on this host) and taken over.
  out = _sweep(tmp_path, "--resume")
  assert out.returncode == 0, out.stdout + out.stderr
  assert "finished trials kept" in out.stdout
  after = _finished(db)
  assert len(after) == 8
  assert len({row[0] for row in after}) == 8  # nothing duplicated
  assert after[: len(before)] == before  # nothing lost or changed
  conn = sqlite3.connect(db)
  statuses = [r[0] for r in conn.execute("SELECT status FROM trials ORDER BY id")]
  assert "running" not in statuses  # the killed bucket's rows are kept, marked interrupted
  assert conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0  # released at the end
  assert (tmp_path / "w" / "trials.png").exists() and (tmp_path / "w" / "trials.csv").exists()
  summary = json.load(open(tmp_path / "w" / "summary.json"))
  assert summary["trials"] == 8 and "NDCG@10" in summary["best_test"]
  # A seeded sweep resumed after a kill proposes what an uninterrupted one does.
  other = tmp_path / "uninterrupted"
  other.mkdir()
  assert _sweep(other).returncode == 0
  assert [r[0] for r in _finished(str(other / "m.sqlite"))] == [r[0] for r in after]
  # Starting the same study again without --resume is refused with a clear message;
  # resuming with another budget is refused unless --override says so (and is recorded).
  again = _sweep(tmp_path)
  assert again.returncode == 2 and "--resume" in again.stderr
  changed = _sweep(tmp_path, "--resume", "--budget_trials=10", "--epochs=2")
  assert changed.returncode == 2 and "budget" in changed.stderr and "schedule" in changed.stderr
  assert "--override=budget,schedule" in changed.stderr
  missing = _sweep(tmp_path, "--resume", "--study=nope")
  assert missing.returncode == 2 and "no study 'nope'" in missing.stderr
  more = _sweep(tmp_path, "--resume", "--budget_trials=10", "--override=budget")
  assert more.returncode == 0, more.stderr
  assert len(_finished(db)) == 10
  study = json.loads(sqlite3.connect(db).execute("SELECT settings FROM studies").fetchone()[0])
  assert study["overrides"][0]["changed"]["budget"]["to"]["trials"] == 10


def test_a_second_process_on_a_live_study_is_refused(tmp_path):
  """One owner per study: a live lease refuses a second runner; a stale one is taken over."""
  from vmle_jax.memory.store import Store, StoreError

  store = Store(str(tmp_path / "m.sqlite"))
  did = store.upsert_dataset({"name": "d", "sha256": "x", "users": 1})
  sid = store.create_study("s", did, "sasrec", "random", {"trials": 4}, {})
  ids, _ = store.start_bucket(sid, [TrialConfig(lr=1e-3)])
  assert store.acquire_lease(sid, "first") is None
  other = Store(str(tmp_path / "m.sqlite"))
  with pytest.raises(StoreError, match=r"being run by process \d+ on"):
    other.acquire_lease(sid, "second")
  assert store.trials(sid)[0].status == "running"  # the refused process touched nothing
  # A lease whose heartbeat is older than the stale limit is taken over.
  taken = other.acquire_lease(sid, "second", stale_after_s=0.0)
  assert taken["owner"] == "first"
  assert not store.heartbeat(sid, "first")  # the first process learns it lost the study
  assert other.heartbeat(sid, "second")


def test_resume_while_the_owner_runs_is_refused_and_loses_nothing(tmp_path):
  db = str(tmp_path / "m.sqlite")
  first = _sweep(tmp_path, wait=False)
  deadline = time.time() + 400
  while len(_finished(db)) < 2 and time.time() < deadline and first.poll() is None:
    time.sleep(0.3)
  second = _sweep(tmp_path, "--resume")
  assert second.returncode == 2 and "is being run by process" in second.stderr, second.stderr
  assert first.wait(timeout=600) == 0
  rows = _finished(db)
  assert len(rows) == 8 and len({r[0] for r in rows}) == 8
  statuses = [r[0] for r in sqlite3.connect(db).execute("SELECT status FROM trials")]
  assert "interrupted" not in statuses and "running" not in statuses


@pytest.mark.parametrize("name", ["tpe", "random", "random-packed", "grid"])
def test_a_resumed_strategy_proposes_what_an_uninterrupted_one_would(name):
  space = SearchSpace.for_backbone("sasrec", only=["hidden", "lr", "dropout", "loss"])
  value = lambda cfg: cfg.lr * 10 + cfg.hidden / 1000  # noqa: E731 (a fixed "result")
  full = make_strategy(name, space, seed=5, lanes=4)
  done = set()
  batch1 = [p.config for p in full.ask(4, done)]
  for c in batch1:
    full.tell(c, value(c))
  batch2 = [p.config for p in full.ask(4, done)]
  # Killed after two trials of batch 2 had finished: replay, then finish the cut batch.
  resumed = make_strategy(name, space, seed=5, lanes=4)
  mismatched = resumed.resume(
      [[(c, value(c)) for c in batch1], [(c, value(c)) for c in batch2[:2]]], [4, 4]
  )
  assert mismatched == 0
  done = {c.canonical_json() for c in batch1 + batch2[:2]}
  assert [p.config for p in resumed.propose(2, done)] == batch2[2:]


def test_resume_compares_what_a_study_computes_not_how_its_lanes_run():
  """A study stored before a schedule field existed resumes (the field keeps its default);
  lane_execution never blocks a resume; a real change names the field on both sides."""
  from vmle_jax.config import Schedule
  from vmle_jax.search.study import StudySpec, setting_changes, study_settings

  space = SearchSpace.for_backbone("sasrec")
  spec = StudySpec(name="s", strategy="random", budget_trials=4)
  budget, settings = study_settings(spec, space, Schedule(max_epochs=5))
  old = dict(settings, schedule=dict(settings["schedule"]))
  del old["schedule"]["lane_execution"]  # as stored before the field existed
  study = {"dataset_id": 1, "strategy": "random", "budget": budget, "settings": old}
  for mode in ("auto", "vmap", "serial"):
    _, now = study_settings(spec, space, Schedule(max_epochs=5, lane_execution=mode))
    assert setting_changes(study, spec, budget, now, 1) == {}
  _, longer = study_settings(spec, space, Schedule(max_epochs=9))
  assert setting_changes(study, spec, budget, longer, 1) == {
      "schedule": ({"max_epochs": 5}, {"max_epochs": 9})
  }
