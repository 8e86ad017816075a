"""The SQLite store: schema versions, transactions, two writers at once."""

import multiprocessing
import sqlite3

import pytest

from vmle_jax.config import TrialConfig
from vmle_jax.memory.store import SCHEMA_VERSION, Store, StoreError


def test_schema_is_versioned_and_wal(tmp_path):
  store = Store(str(tmp_path / "m.sqlite"))
  assert store.version == SCHEMA_VERSION
  assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
  assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
  with pytest.raises(sqlite3.IntegrityError):  # foreign keys are enforced
    with store.transaction() as c:
      c.execute(
          "INSERT INTO studies (name, dataset_id, backbone, strategy, budget, settings,"
          " created_at, updated_at) VALUES ('x', 999, 'sasrec', 'grid', '{}', '{}', 0, 0)"
      )


def test_newer_schema_is_refused(tmp_path):
  path = str(tmp_path / "m.sqlite")
  Store(path).conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
  with pytest.raises(StoreError, match="newer"):
    Store(path)


def _fingerprint(name="d"):
  return {"name": name, "sha256": "abc" + name, "users": 3}


def test_bucket_lifecycle_and_reset(tmp_path):
  store = Store(str(tmp_path / "m.sqlite"))
  did = store.upsert_dataset(_fingerprint())
  assert store.upsert_dataset(_fingerprint()) == did
  sid = store.create_study("s", did, "sasrec", "random", {"trials": 4}, {"seed": 0})
  with pytest.raises(StoreError, match="already exists"):
    store.create_study("s", did, "sasrec", "random", {}, {})
  cfgs = [TrialConfig(lr=1e-3), TrialConfig(lr=2e-3)]
  ids, bucket = store.start_bucket(sid, cfgs)
  assert bucket == 0 and len(ids) == 2
  store.finish_bucket(
      [
          (ids[0], {"status": "finished", "valid": {"NDCG@10": 0.1}}),
          (ids[1], {"status": "diverged", "error": "nan"}),
      ]
  )
  ids2, bucket2 = store.start_bucket(sid, [TrialConfig(lr=3e-3)])
  assert bucket2 == 1
  assert store.interrupt_unfinished(sid) == 1  # the running one from a "killed" process
  done = store.finished_trials(sid)
  assert [t.status for t in done] == ["finished", "diverged"]
  assert done[0].valid == {"NDCG@10": 0.1}
  assert TrialConfig.from_dict(done[0].config) == cfgs[0]
  with pytest.raises(sqlite3.IntegrityError):  # a config is run once per study
    store.start_bucket(sid, [cfgs[0]])
  # The interrupted row is kept; its config runs again under a new, never reused id.
  ids3, _ = store.start_bucket(sid, [TrialConfig(lr=3e-3)])
  assert ids3[0] > ids2[0]
  rows = store.trials(sid)
  assert [t.status for t in rows] == ["finished", "diverged", "interrupted", "running"]
  assert [t.number for t in rows] == [0, 1, 2, 3]


def _writer(path, name, n, queue):
  try:
    store = Store(path, busy_timeout_s=30)
    did = store.upsert_dataset(_fingerprint())
    sid = store.create_study(name, did, "sasrec", "random", {}, {})
    for i in range(n):
      ids, _ = store.start_bucket(
          sid, [TrialConfig(lr=1e-4 * (i + 1)), TrialConfig(lr=1e-4 * (i + 1), dropout=0.3)]
      )
      store.finish_bucket([(t, {"status": "finished", "valid": {"NDCG@10": i}}) for t in ids])
    queue.put((name, "ok"))
  except Exception as e:  # reported to the parent
    queue.put((name, repr(e)))


def test_two_processes_write_one_file_at_once(tmp_path):
  path = str(tmp_path / "m.sqlite")
  Store(path).close()
  ctx = multiprocessing.get_context("spawn")
  queue = ctx.Queue()
  procs = [ctx.Process(target=_writer, args=(path, f"s{i}", 40, queue)) for i in range(2)]
  for p in procs:
    p.start()
  for p in procs:
    p.join(120)
  results = dict(queue.get(timeout=5) for _ in procs)
  assert results == {"s0": "ok", "s1": "ok"}
  store = Store(path)
  for name in ("s0", "s1"):
    assert len(store.finished_trials(store.study(name)["id"])) == 80


def test_memory_listing_and_report_agree_on_the_best_of_a_study_with_a_diverged_trial(tmp_path):
  import subprocess
  import sys
  from vmle_jax.report import load_group

  path = str(tmp_path / "m.sqlite")
  store = Store(path)
  sid = store.create_study(
      "s", store.upsert_dataset(_fingerprint()), "sasrec", "random", {"trials": 2}, {"group": "g"}
  )
  ids, _ = store.start_bucket(sid, [TrialConfig(lr=1e-3), TrialConfig(lr=2e-3)])
  store.finish_bucket(
      [
          (ids[0], {"status": "finished", "valid": {"NDCG@10": 0.1}}),
          (ids[1], {"status": "diverged", "valid": {"NDCG@10": 0.9}}),
      ]
  )
  out = subprocess.run(
      [sys.executable, "-m", "vmle_jax.launch.memory", "studies", f"--db={path}"],
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert "best val NDCG@10 0.1000" in out.stdout, out.stdout + out.stderr
  assert load_group(store, "g")[0].best_valid["NDCG@10"] == 0.1


def test_copy_study_keeps_trial_ids_insights_and_refuses_collisions(tmp_path):
  from vmle_jax.memory.records import RuleKey

  src = Store(str(tmp_path / "src.sqlite"))
  did = src.upsert_dataset(_fingerprint())
  src.create_study("filler", did, "sasrec", "random", {"trials": 1}, {"seed": 0})
  sid = src.create_study("s", did, "sasrec", "agent:heuristic", {"trials": 2}, {"seed": 3})
  other = src.create_study("other", did, "sasrec", "tpe", {"trials": 1}, {"seed": 0})
  src.start_bucket(other, [TrialConfig(lr=5e-3)])  # trial ids of s start above 1
  ids, _ = src.start_bucket(sid, [TrialConfig(lr=1e-3), TrialConfig(lr=2e-3)])
  src.finish_bucket([(i, {"status": "finished", "valid": {"NDCG@10": 0.1 + i}}) for i in ids])
  src.set_study_status(sid, "finished")
  src.upsert_insight(
      did, sid, "sasrec", "raising lr helped", RuleKey("lr", "up"), [ids[1]], [], 0.6, "h"
  )
  src.log_llm_call(sid, "heuristic", None, "propose", "ok")

  dst = Store(str(tmp_path / "dst.sqlite"))
  new = dst.copy_study(src, "s", "copy")
  study = dst.study(new)
  assert study["status"] == "finished" and study["settings"]["seed"] == 3
  assert study["settings"]["copied_from"] == {"memory": src.path, "study": "s"}
  assert [t.id for t in dst.finished_trials(new)] == ids  # insights name trials by id
  assert [t.valid for t in dst.finished_trials(new)] == [t.valid for t in src.finished_trials(sid)]
  (ins,) = dst.insights(study_id=new)
  assert ins["support"] == [ids[1]] and ins["dataset_id"] == study["dataset_id"]
  assert len(dst.llm_calls(new)) == 1
  # New trials here never reuse a copied id.
  later, _ = dst.start_bucket(new, [TrialConfig(lr=9e-3)])
  assert later[0] > max(ids)
  with pytest.raises(StoreError, match="already exists"):
    dst.copy_study(src, "s", "copy")
  with pytest.raises(StoreError, match="taken here"):
    dst.copy_study(src, "s", "copy2")
  with pytest.raises(StoreError, match="no study"):
    dst.copy_study(src, "missing", "copy3")


def test_insights_of_studies_sharing_a_memory_keep_both_studies_evidence(tmp_path):
  from vmle_jax.memory.records import RuleKey, confidence

  store = Store(str(tmp_path / "m.sqlite"))
  did = store.upsert_dataset(_fingerprint())
  a = store.create_study("a", did, "sasrec", "agent:heuristic", {"trials": 4}, {"seed": 0})
  b = store.create_study("b", did, "sasrec", "agent:heuristic", {"trials": 4}, {"seed": 1})
  key = RuleKey("hidden", "up")
  store.upsert_insight(did, a, "sasrec", "wider helped (a)", key, [1, 2], [3], 0.6, "h")
  store.upsert_insight(did, b, "sasrec", "wider helped (b)", key, [11], [12, 13], 0.4, "h")
  (merged,) = store.insights(backbone="sasrec")
  assert merged["support"] == [1, 2, 11] and merged["contradict"] == [3, 12, 13]
  assert merged["confidence"] == pytest.approx(confidence(3, 3))
  assert sorted(merged["studies"]) == [a, b] and merged["rule"] == "wider helped (b)"
  # Each study still sees its own evidence, and rewriting it replaces only its own row.
  (own,) = store.insights(study_id=a)
  assert own["support"] == [1, 2] and own["contradict"] == [3] and own["study_id"] == a
  store.upsert_insight(did, a, "sasrec", "wider helped (a)", key, [1, 2, 4], [3], 0.67, "h")
  (merged,) = store.insights()
  assert merged["support"] == [1, 2, 4, 11]
  # Cutting a study takes its evidence out; an insight nobody supports any more goes.
  store.upsert_insight(did, a, "sasrec", "deeper hurt", RuleKey("blocks", "up"), [], [5], 0.3, "h")
  store.start_bucket(a, [TrialConfig()], [{"proposal": {}, "batch": 1, "planner_seconds": 0}])
  assert store.cut_study(a, 1) == 1
  assert [i["rule"] for i in store.insights()] == ["wider helped (b)"]
  assert store.insights()[0]["support"] == [11] and store.insights(study_id=a) == []


def test_a_memory_from_before_merged_insights_is_migrated_with_its_evidence(tmp_path, monkeypatch):
  from vmle_jax.memory.store import schema_sections

  path = str(tmp_path / "old.sqlite")
  conn = sqlite3.connect(path)
  for version, sql in schema_sections():
    if version <= 5:
      conn.executescript(sql)
  conn.execute("PRAGMA user_version = 5")
  conn.execute("INSERT INTO datasets (name, sha256, stats, created_at) VALUES ('d', 'x', '{}', 0)")
  conn.execute(
      "INSERT INTO studies (name, dataset_id, backbone, strategy, budget, settings, created_at,"
      " updated_at) VALUES ('s', 1, 'sasrec', 'agent', '{}', '{}', 0, 0)"
  )
  conn.execute(
      "INSERT INTO insights (dataset_id, study_id, backbone, rule, key, support, contradict, "
      "confidence, source, created_at, updated_at) VALUES (1, 1, 'sasrec', 'wider helped', "
      """'{"dimension": "hidden", "direction": "up", "value": null}', '[7, 8]', '[]', 0.75, """
      "'heuristic', 0, 0)"
  )
  conn.commit()
  conn.close()
  import os

  # Where the file cannot be written it is read as it is, unmigrated, insights included.
  monkeypatch.setattr(os, "access", lambda *a, **k: False)
  old = Store(path, readonly=True)
  assert old.version == 5 and old.insights()[0]["support"] == [7, 8]
  assert old.insights(study_id=1)[0]["studies"] == [1]
  old.close()
  monkeypatch.undo()
  store = Store(path)
  assert store.version == SCHEMA_VERSION
  (own,) = store.insights(study_id=1)
  assert own["support"] == [7, 8] and own["confidence"] == 0.75
  (merged,) = store.insights()
  assert merged["support"] == [7, 8] and merged["studies"] == [1]


def test_a_retired_study_leaves_its_name_and_group_to_a_new_run(tmp_path):
  store = Store(str(tmp_path / "m.sqlite"))
  did = store.upsert_dataset(_fingerprint())
  sid = store.create_study("cmp-g-agent-s0", did, "sasrec", "agent", {}, {"group": "g"})
  store.start_bucket(sid, [TrialConfig(lr=1e-3)])
  assert store.retire_study("cmp-g-agent-s0") == "cmp-g-agent-s0-retired"
  old = store.study(sid)
  assert old["name"] == "cmp-g-agent-s0-retired" and old["settings"]["group"] == "g-retired"
  assert store.study("cmp-g-agent-s0") is None and len(store.trials(sid)) == 1  # kept
  store.create_study("cmp-g-agent-s0", did, "sasrec", "agent", {}, {"group": "g"})
  with pytest.raises(StoreError, match="already exists"):  # a second retirement: refused
    store.retire_study("cmp-g-agent-s0")
  with pytest.raises(StoreError, match="no study"):
    store.retire_study("missing")
