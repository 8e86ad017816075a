"""The SQLite store behind the memory: data sets, studies, trials, insights, summaries.

WAL journal, foreign keys, a busy timeout and retried write transactions, so
two processes can write one file at once. Every write is one transaction: a
bucket's trials are registered together and finished together, so a killed
run leaves either the whole bucket's results or none of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import sqlite3
import time
from typing import Any, Callable, Iterable

from vmle_jax.memory.records import FINAL_STATUSES, RuleKey, Trial, confidence

TRIAL_JSON = ("config", "valid", "test", "curve", "proposal")
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.sql")


def schema_sections() -> list[tuple[int, str]]:
  """The versioned sections of schema.sql, in order."""
  with open(SCHEMA_FILE) as f:
    text = f.read()
  sections, version, lines = [], None, []
  for line in text.splitlines():
    if line.startswith("-- version "):
      if version is not None:
        sections.append((version, "\n".join(lines)))
      version, lines = int(line.split()[2].rstrip(":")), []
    elif version is not None:
      lines.append(line)
  if version is not None:
    sections.append((version, "\n".join(lines)))
  return sections


SCHEMA_VERSION = schema_sections()[-1][0]
MERGED_INSIGHTS = 6  # the schema version from which insights merge every study's evidence


class StoreError(RuntimeError):
  pass


class Store:
  """One SQLite memory file; see the module docstring."""

  def __init__(self, path: str, busy_timeout_s: float = 60.0, readonly: bool = False):
    """Opens (or creates) the memory at `path`; `readonly` opens an existing file for reading
    only (works in a read-only directory). Any problem is a StoreError naming the file."""
    self.path = path
    self.readonly = readonly
    try:
      self._open(busy_timeout_s)
    except sqlite3.DatabaseError as e:
      raise StoreError(f"--db={path}: {_explain(e, path)}") from None
    except OSError as e:
      raise StoreError(f"--db={path}: {e.strerror or e}") from None

  def _open(self, busy_timeout_s: float) -> None:
    path = self.path
    if os.path.isdir(path):
      raise StoreError(f"--db={path}: is a directory, not a SQLite file")
    writable = os.access(path, os.W_OK) and os.access(
        os.path.dirname(os.path.abspath(path)), os.W_OK
    )
    if self.readonly and writable:
      self.readonly = False  # open as usual (an old file is migrated forward)
    if self.readonly:
      if not os.path.exists(path):
        raise StoreError(f"--db={path}: no such memory file")
      uri = f"file:{os.path.abspath(path)}?mode=ro"
      if not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
        uri += "&immutable=1"  # a WAL file cannot be opened read-only without its -shm
      self.conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None)
      self.conn.row_factory = sqlite3.Row
      current = self.conn.execute("PRAGMA user_version").fetchone()[0]
      if current > SCHEMA_VERSION:
        raise StoreError(
            f"--db={path}: schema version {current} is newer than this vmle-jax "
            f"({SCHEMA_VERSION}); upgrade vmle-jax"
        )
      self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
      return
    directory = os.path.dirname(path)
    if directory:
      os.makedirs(directory, exist_ok=True)
    if not os.access(directory or ".", os.W_OK):
      raise StoreError(f"--db={path}: the directory {directory or '.'} is not writable")
    self.conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    self.conn.row_factory = sqlite3.Row
    self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    self._retry(lambda: self.conn.execute("PRAGMA journal_mode = WAL"))
    self.conn.execute("PRAGMA foreign_keys = ON")
    self.conn.execute("PRAGMA synchronous = NORMAL")
    self._migrate()

  def close(self) -> None:
    self.conn.close()

  # ---------------------------------------------------------------- plumbing
  def _retry(self, fn, attempts: int = 20):
    for i in range(attempts):
      try:
        return fn()
      except sqlite3.OperationalError as e:
        if "locked" not in str(e) and "busy" not in str(e):
          raise
        time.sleep(min(2.0, 0.05 * 2**i) * (0.5 + random.random()))
    raise StoreError(f"{self.path}: database stayed locked after {attempts} attempts")

  @contextlib.contextmanager
  def transaction(self):
    """BEGIN IMMEDIATE ... COMMIT, retried while another process holds the write lock."""
    try:
      self._retry(lambda: self.conn.execute("BEGIN IMMEDIATE"))
    except sqlite3.DatabaseError as e:
      raise StoreError(f"--db={self.path}: {_explain(e, self.path)}") from None
    try:
      yield self.conn
    except BaseException as e:
      try:
        self.conn.execute("ROLLBACK")
      except sqlite3.DatabaseError:
        pass
      if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.IntegrityError):
        raise StoreError(f"--db={self.path}: {_explain(e, self.path)}") from None
      raise
    else:
      try:
        self._retry(lambda: self.conn.execute("COMMIT"))
      except sqlite3.DatabaseError as e:
        self.conn.execute("ROLLBACK")
        raise StoreError(f"--db={self.path}: {_explain(e, self.path)}") from None

  @property
  def version(self) -> int:
    return self.conn.execute("PRAGMA user_version").fetchone()[0]

  def _migrate(self) -> None:
    with self.transaction() as c:
      current = c.execute("PRAGMA user_version").fetchone()[0]
      if current > SCHEMA_VERSION:
        raise StoreError(
            f"{self.path}: schema version {current} is newer than this "
            f"vmle-jax ({SCHEMA_VERSION}); upgrade vmle-jax"
        )
      for version, sql in schema_sections():
        if version > current:
          for statement in _statements(sql):
            c.execute(statement)
          c.execute(f"PRAGMA user_version = {version}")

  # ---------------------------------------------------------------- data sets
  def upsert_dataset(self, fingerprint: dict) -> int:
    stats = {k: v for k, v in fingerprint.items() if k not in ("name", "sha256")}
    with self.transaction() as c:
      row = c.execute(
          "SELECT id FROM datasets WHERE sha256 = ?", (fingerprint["sha256"],)
      ).fetchone()
      if row:
        return row["id"]
      cur = c.execute(
          "INSERT INTO datasets (name, sha256, stats, created_at) VALUES (?, ?, ?, ?)",
          (fingerprint["name"], fingerprint["sha256"], json.dumps(stats), time.time()),
      )
      return cur.lastrowid

  def datasets(self) -> list[dict]:
    return [
        _row(r, json_fields=("stats",))
        for r in self.conn.execute("SELECT * FROM datasets ORDER BY id")
    ]

  # ---------------------------------------------------------------- studies
  def create_study(
      self, name: str, dataset_id: int, backbone: str, strategy: str, budget: dict, settings: dict
  ) -> int:
    now = time.time()
    with self.transaction() as c:
      if c.execute("SELECT 1 FROM studies WHERE name = ?", (name,)).fetchone():
        raise StoreError(
            f"study {name!r} already exists in {self.path}; pass --resume to "
            "continue it or choose another --study name"
        )
      cur = c.execute(
          "INSERT INTO studies (name, dataset_id, backbone, strategy, budget, settings, status,"
          " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
          (
              name,
              dataset_id,
              backbone,
              strategy,
              json.dumps(budget, sort_keys=True),
              json.dumps(settings, sort_keys=True),
              now,
              now,
          ),
      )
      return cur.lastrowid

  def study(self, name_or_id) -> dict | None:
    col = "id" if isinstance(name_or_id, int) else "name"
    r = self.conn.execute(f"SELECT * FROM studies WHERE {col} = ?", (name_or_id,)).fetchone()
    return _row(r, json_fields=("budget", "settings")) if r else None

  def studies(self) -> list[dict]:
    return [
        _row(r, json_fields=("budget", "settings"))
        for r in self.conn.execute("SELECT * FROM studies ORDER BY id")
    ]

  def update_study_settings(
      self, study_id: int, budget: dict | None, settings: dict, override: dict
  ) -> None:
    """Changes a study's budget and settings on an explicit override, recorded in settings."""
    with self.transaction() as c:
      row = c.execute("SELECT budget, settings FROM studies WHERE id = ?", (study_id,)).fetchone()
      stored = json.loads(row["settings"])
      stored.update(settings)
      stored.setdefault("overrides", []).append({"at": time.time(), "changed": override})
      c.execute(
          "UPDATE studies SET budget = ?, settings = ?, updated_at = ? WHERE id = ?",
          (
              json.dumps(budget, sort_keys=True) if budget is not None else row["budget"],
              json.dumps(stored, sort_keys=True),
              time.time(),
              study_id,
          ),
      )

  def copy_study(self, source: "Store", name: str, new_name: str) -> int:
    """Copies study `name` of another memory here as `new_name`, with its data set, trials,
    insights and planner calls; returns the new study id.

    Trial ids are kept, because insights, summaries and proposals name trials by id: a
    copy that would reuse an id already taken here is refused. The study's evidence for
    each insight is merged with what this memory holds. The study's settings record where
    it came from. Used so an identical study is not trained twice (bench/transfer.py)."""
    study = source.study(name)
    if study is None:
      raise StoreError(f"{source.path}: no study {name!r} to copy")
    ds = source.conn.execute(
        "SELECT * FROM datasets WHERE id = ?", (study["dataset_id"],)
    ).fetchone()
    fingerprint = {**json.loads(ds["stats"]), "name": ds["name"], "sha256": ds["sha256"]}
    dataset_id = self.upsert_dataset(fingerprint)
    trials = [
        dict(r)
        for r in source.conn.execute(
            "SELECT * FROM trials WHERE study_id = ? ORDER BY id", (study["id"],)
        )
    ]
    insights = source.insights(study_id=study["id"])
    calls = source.llm_calls(study["id"])
    settings = {**study["settings"], "copied_from": {"memory": source.path, "study": name}}
    with self.transaction() as c:
      if c.execute("SELECT 1 FROM studies WHERE name = ?", (new_name,)).fetchone():
        raise StoreError(f"{self.path}: study {new_name!r} already exists; not copied")
      ids = [t["id"] for t in trials]
      taken = (
          [
              r[0]
              for r in c.execute(
                  f"SELECT id FROM trials WHERE id IN ({','.join('?' * len(ids))})", ids
              )
          ]
          if ids
          else []
      )
      if taken:
        raise StoreError(
            f"{self.path}: trial ids {taken[:5]} of {name!r} are taken here; copy it into "
            "a memory that does not hold them"
        )
      sid = c.execute(
          "INSERT INTO studies (name, dataset_id, backbone, strategy, budget, settings, status,"
          " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
          (
              new_name,
              dataset_id,
              study["backbone"],
              study["strategy"],
              json.dumps(study["budget"], sort_keys=True),
              json.dumps(settings, sort_keys=True),
              study["status"],
              study["created_at"],
              study["updated_at"],
          ),
      ).lastrowid
      for t in trials:
        _insert(c, "trials", {**t, "study_id": sid})
      for call in calls:
        call.pop("id")
        _insert(c, "llm_calls", {**call, "study_id": sid})
      for ins in insights:  # merged with what this memory already knows of the data set
        _write_evidence(
            c,
            dataset_id,
            sid,
            ins["backbone"],
            ins["rule"],
            RuleKey.of(ins["key"]),
            ins["support"],
            ins["contradict"],
            ins["confidence"],
            ins["source"],
        )
      return sid

  def start_trial_ids_after(self, n: int) -> None:
    """New trials here take ids above `n`, so a study copied in later from another memory
    (whose trials keep their ids: `copy_study`) cannot collide with those trained here."""
    with self.transaction() as c:
      row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'trials'").fetchone()
      if row is None:
        c.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('trials', ?)", (n,))
      elif row[0] < n:
        c.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'trials'", (n,))

  def cut_study(self, study_id: int, from_batch: int) -> int:
    """Deletes a study's trials of batch `from_batch` and later (and the interrupted ones),
    its evidence for insights (its planner rewrites it from the trials left at its next
    batch; insights no other study supports go with it) and
    its planner records since the first deleted trial; marks it interrupted, so the next
    run resumes it from the batches kept. Returns how many trials were deleted. Used when
    a changed planner would have proposed those batches differently (bench/replan.py)."""
    with self.transaction() as c:
      first = c.execute(
          "SELECT min(created_at) FROM trials WHERE study_id = ? AND (batch >= ? OR status = "
          "'interrupted')",
          (study_id, from_batch),
      ).fetchone()[0]
      if first is None:
        return 0
      deleted = c.execute(
          "DELETE FROM trials WHERE study_id = ? AND (batch >= ? OR status = 'interrupted')",
          (study_id, from_batch),
      ).rowcount
      _drop_evidence(c, study_id)
      c.execute("DELETE FROM llm_calls WHERE study_id = ? AND created_at >= ?", (study_id, first))
      c.execute(
          "UPDATE studies SET status = 'interrupted', updated_at = ? WHERE id = ?",
          (time.time(), study_id),
      )
      return deleted

  def retire_study(self, name: str, suffix: str = "retired") -> str:
    """Renames study `name` to `<name>-<suffix>` and moves it out of its comparison group
    (to `<group>-<suffix>`), trials and insights kept: an arm trained again under changed
    code keeps its earlier run beside the new one. Returns the new name."""
    new = f"{name}-{suffix}"
    with self.transaction() as c:
      row = c.execute("SELECT id, settings FROM studies WHERE name = ?", (name,)).fetchone()
      if row is None:
        raise StoreError(f"{self.path}: no study {name!r} to retire")
      if c.execute("SELECT 1 FROM studies WHERE name = ?", (new,)).fetchone():
        raise StoreError(f"{self.path}: study {new!r} already exists; {name!r} not retired")
      settings = json.loads(row["settings"])
      if settings.get("group"):
        settings["group"] = f"{settings['group']}-{suffix}"
      c.execute(
          "UPDATE studies SET name = ?, settings = ?, updated_at = ? WHERE id = ?",
          (new, json.dumps(settings, sort_keys=True), time.time(), row["id"]),
      )
    return new

  def set_study_status(self, study_id: int, status: str) -> None:
    with self.transaction() as c:
      c.execute(
          "UPDATE studies SET status = ?, updated_at = ? WHERE id = ?",
          (status, time.time(), study_id),
      )

  def add_charge(
      self,
      study_id: int,
      seconds: float,
      what: str,
      before_batch: int | None = None,
      bucket: int | None = None,
  ) -> None:
    """Charges `seconds` of the study's wall-clock spent outside its buckets and planner
    calls (start-up, bookkeeping, a bucket a kill left unfinished) to its budget: appended
    to settings["charges"], which search/budget.py `spent_seconds` and the report add."""
    self._update_settings(
        study_id,
        lambda st: st.setdefault("charges", []).append(
            {
                "what": what,
                "seconds": round(float(seconds), 3),
                "before_batch": before_batch,
                "bucket": bucket,
            }
        ),
    )

  def set_stop_reason(self, study_id: int, reason: str) -> None:
    """Why the study's last run stopped proposing (shown by the console and the report)."""
    self._update_settings(study_id, lambda st: st.__setitem__("stop_reason", reason))

  def _update_settings(self, study_id: int, change) -> None:
    with self.transaction() as c:
      row = c.execute("SELECT settings FROM studies WHERE id = ?", (study_id,)).fetchone()
      stored = json.loads(row["settings"])
      change(stored)
      c.execute(
          "UPDATE studies SET settings = ?, updated_at = ? WHERE id = ?",
          (json.dumps(stored, sort_keys=True), time.time(), study_id),
      )

  # ---------------------------------------------------------------- trials
  def interrupt_unfinished(self, study_id: int) -> int:
    """Marks trials a killed run left `running` as `interrupted` (kept, never reused);
    returns how many. Their configurations are proposed again by the resumed run."""
    with self.transaction() as c:
      return c.execute(
          "UPDATE trials SET status = 'interrupted', error = 'interrupted: the "
          "run that trained it ended first', finished_at = ? WHERE study_id = ? "
          "AND status = 'running'",
          (time.time(), study_id),
      ).rowcount

  # ---------------------------------------------------------------- leases
  def acquire_lease(self, study_id: int, owner: str, stale_after_s: float = 120.0) -> dict | None:
    """Makes `owner` (this process) the study's only runner.

    Refused with a StoreError naming the current owner while its heartbeat is
    fresh; a stale lease (no heartbeat for `stale_after_s`, or a dead process
    on this host) is taken over. Returns the lease that was taken over, if any.
    """
    now, host, pid = time.time(), socket.gethostname(), os.getpid()
    with self.transaction() as c:
      row = c.execute("SELECT * FROM leases WHERE study_id = ?", (study_id,)).fetchone()
      previous = dict(row) if row else None
      if previous and previous["owner"] != owner:
        age = now - previous["heartbeat"]
        dead = previous["host"] == host and not _pid_alive(previous["pid"])
        if age < stale_after_s and not dead:
          name = c.execute("SELECT name FROM studies WHERE id = ?", (study_id,)).fetchone()[0]
          raise StoreError(
              f"study {name!r} is being run by process {previous['pid']} on "
              f"{previous['host']} (last heartbeat {age:.0f} s ago); wait for it to finish, "
              f"stop it, or choose another --study name"
          )
      c.execute(
          "INSERT INTO leases (study_id, owner, host, pid, heartbeat, acquired_at) "
          "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(study_id) DO UPDATE SET owner = "
          "excluded.owner, host = excluded.host, pid = excluded.pid, heartbeat = "
          "excluded.heartbeat, acquired_at = excluded.acquired_at",
          (study_id, owner, host, pid, now, now),
      )
    return previous if previous and previous["owner"] != owner else None

  def heartbeat(self, study_id: int, owner: str) -> bool:
    """Refreshes the lease; False if another process has taken it over."""
    with self.transaction() as c:
      return (
          c.execute(
              "UPDATE leases SET heartbeat = ? WHERE study_id = ? AND owner = ?",
              (time.time(), study_id, owner),
          ).rowcount
          == 1
      )

  def release_lease(self, study_id: int, owner: str) -> None:
    with self.transaction() as c:
      c.execute("DELETE FROM leases WHERE study_id = ? AND owner = ?", (study_id, owner))

  def lease(self, study_id: int) -> dict | None:
    row = self.conn.execute("SELECT * FROM leases WHERE study_id = ?", (study_id,)).fetchone()
    return dict(row) if row else None

  def start_bucket(
      self, study_id: int, configs: Iterable, extra: Iterable[dict] | None = None
  ) -> tuple[list[int], int]:
    """Registers a bucket's trials as `running` in one transaction; returns (ids, bucket).

    `extra` holds per-trial columns (proposal, batch, planner_seconds)."""
    configs = list(configs)
    extra = list(extra) if extra is not None else [{}] * len(configs)
    now = time.time()
    with self.transaction() as c:
      number = c.execute(
          "SELECT COALESCE(MAX(number), -1) + 1 FROM trials WHERE study_id = ?", (study_id,)
      ).fetchone()[0]
      bucket = c.execute(
          "SELECT COALESCE(MAX(bucket), -1) + 1 FROM trials WHERE study_id = ?", (study_id,)
      ).fetchone()[0]
      ids = []
      for i, (cfg, ex) in enumerate(zip(configs, extra)):
        cols = {
            "study_id": study_id,
            "number": number + i,
            "config": cfg.canonical_json(),
            "signature": cfg.signature_key(),
            "bucket": bucket,
            "status": "running",
            "created_at": now,
            **{k: json.dumps(v) if k in TRIAL_JSON else v for k, v in ex.items()},
        }
        cur = c.execute(
            f"INSERT INTO trials ({', '.join(cols)}) VALUES " f"({', '.join('?' * len(cols))})",
            tuple(cols.values()),
        )
        ids.append(cur.lastrowid)
      c.execute("UPDATE studies SET updated_at = ? WHERE id = ?", (now, study_id))
      return ids, bucket

  def finish_bucket(self, updates: list[tuple[int, dict]]) -> None:
    """Writes every lane's outcome of a bucket in one transaction."""
    now = time.time()
    with self.transaction() as c:
      for trial_id, u in updates:
        u = dict(u)
        for key in TRIAL_JSON:
          if key in u and u[key] is not None and not isinstance(u[key], str):
            u[key] = json.dumps(u[key])
        u["finished_at"] = now
        sets = ", ".join(f"{k} = ?" for k in u)
        c.execute(f"UPDATE trials SET {sets} WHERE id = ?", (*u.values(), trial_id))

  def add_planner_seconds(self, trial_ids: Iterable[int], seconds: float) -> None:
    """Adds planner wall-clock (e.g. the reflection after training) to a batch's trials."""
    ids = [int(i) for i in trial_ids]
    if not ids:
      return
    with self.transaction() as c:
      c.execute(
          f"UPDATE trials SET planner_seconds = COALESCE(planner_seconds, 0) + ? "
          f"WHERE id IN ({', '.join('?' * len(ids))})",
          (float(seconds), *ids),
      )

  def update_trial(self, trial_id: int, **fields) -> None:
    with self.transaction() as c:
      for key in TRIAL_JSON:
        if key in fields and fields[key] is not None and not isinstance(fields[key], str):
          fields[key] = json.dumps(fields[key])
      sets = ", ".join(f"{k} = ?" for k in fields)
      c.execute(f"UPDATE trials SET {sets} WHERE id = ?", (*fields.values(), trial_id))

  def trials(self, study_id: int, statuses: Iterable[str] | None = None) -> list[Trial]:
    q = "SELECT * FROM trials WHERE study_id = ?"
    args: list[Any] = [study_id]
    if statuses:
      statuses = list(statuses)
      q += f" AND status IN ({', '.join('?' * len(statuses))})"
      args += statuses
    rows = self.conn.execute(q + " ORDER BY number", args)
    return [Trial.from_row(_row(r, json_fields=TRIAL_JSON)) for r in rows]

  def finished_trials(self, study_id: int) -> list[Trial]:
    return self.trials(study_id, FINAL_STATUSES)

  def trials_by_id(self, ids: Iterable[int]) -> list[Trial]:
    """The trials with these ids (any study), in id order."""
    ids = [int(i) for i in ids]
    if not ids:
      return []
    rows = self.conn.execute(
        f"SELECT * FROM trials WHERE id IN ({', '.join('?' * len(ids))}) ORDER BY id", ids
    )
    return [Trial.from_row(_row(r, json_fields=TRIAL_JSON)) for r in rows]

  # ---------------------------------------------------------------- insights (L1)
  def upsert_insight(
      self,
      dataset_id: int,
      study_id: int | None,
      backbone: str,
      rule: str,
      key: RuleKey,
      support: list[int],
      contradict: list[int],
      confidence: float,
      source: str,
      phrase: Callable[[int, int], str] | None = None,
  ) -> int:
    """Writes a study's evidence for a rule on (data set, backbone, key) and merges it with
    every other study's: the study's own row is replaced (it recounts its trials each
    batch), the insight holds the union of all rows and the confidence recounted from it.
    `phrase(support, contradict)` words the merged rule from the merged counts (without
    it, or with one study's evidence, the insight reads as its latest writer's `rule`)."""
    with self.transaction() as c:
      return _write_evidence(
          c,
          dataset_id,
          study_id,
          backbone,
          rule,
          key,
          support,
          contradict,
          confidence,
          source,
          phrase,
      )

  def insights(
      self, backbone: str | None = None, dataset_id: int | None = None, study_id: int | None = None
  ) -> list[dict]:
    """Insights with the evidence of every study merged; with `study_id`, the rules that
    study has evidence for, as that study alone sees them (its own support, contradiction
    and confidence: what a fair comparison's agent may read)."""
    if self.version < MERGED_INSIGHTS:  # a file opened read-only, never migrated
      return self._insights_before_merging(backbone, dataset_id, study_id)
    if study_id is None:
      q = (
          "SELECT i.*, d.name AS dataset, (SELECT json_group_array(e.study_id) FROM "
          "insight_evidence e WHERE e.insight_id = i.id AND e.study_id IS NOT NULL) AS studies "
          "FROM insights i JOIN datasets d ON d.id = i.dataset_id WHERE 1"
      )
      args: list = []
    else:
      q = (
          "SELECT i.id, i.dataset_id, e.study_id, i.backbone, e.rule, i.key, e.support, "
          "e.contradict, e.confidence, e.source, i.created_at, e.updated_at, d.name AS dataset, "
          "json_array(e.study_id) AS studies FROM insights i JOIN insight_evidence e ON "
          "e.insight_id = i.id JOIN datasets d ON d.id = i.dataset_id WHERE e.study_id = ?"
      )
      args = [study_id]
    for col, val in (("i.backbone", backbone), ("i.dataset_id", dataset_id)):
      if val is not None:
        q += f" AND {col} = ?"
        args.append(val)
    order = (
        " ORDER BY i.confidence DESC, i.id"
        if study_id is None
        else " ORDER BY e.confidence DESC, i.id"
    )
    rows = self.conn.execute(q + order, args)
    return [_row(r, json_fields=("key", "support", "contradict", "studies")) for r in rows]

  def _insights_before_merging(self, backbone, dataset_id, study_id) -> list[dict]:
    """insights() on a schema older than merged insights: one writer per row."""
    q, args = (
        "SELECT i.*, d.name AS dataset, json_array(i.study_id) AS studies FROM insights i JOIN "
        "datasets d ON d.id = i.dataset_id WHERE 1",
        [],
    )
    for col, val in (
        ("i.backbone", backbone),
        ("i.dataset_id", dataset_id),
        ("i.study_id", study_id),
    ):
      if val is not None:
        q += f" AND {col} = ?"
        args.append(val)
    rows = self.conn.execute(q + " ORDER BY i.confidence DESC, i.id", args)
    return [_row(r, json_fields=("key", "support", "contradict", "studies")) for r in rows]

  # ---------------------------------------------------------------- summaries (L2)
  def add_summary(self, backbone: str, rules: list[dict], provenance: dict) -> int:
    """Stores a new version of a backbone's cognition summary; returns the version."""
    with self.transaction() as c:
      version = c.execute(
          "SELECT COALESCE(MAX(version), 0) + 1 FROM summaries WHERE backbone = ?", (backbone,)
      ).fetchone()[0]
      c.execute(
          "INSERT INTO summaries (backbone, version, rules, provenance, created_at) "
          "VALUES (?, ?, ?, ?, ?)",
          (
              backbone,
              version,
              json.dumps(rules),
              json.dumps(provenance, sort_keys=True),
              time.time(),
          ),
      )
      return version

  def drop_summaries(self) -> None:
    """Forgets every summary version (a scratch copy that is to be distilled afresh, with
    none of the rules an earlier version imported)."""
    with self.transaction() as c:
      c.execute("DELETE FROM summaries")

  def summary(self, backbone: str, version: int | None = None) -> dict | None:
    q = "SELECT * FROM summaries WHERE backbone = ?"
    args: list[Any] = [backbone]
    if version is not None:
      q += " AND version = ?"
      args.append(version)
    r = self.conn.execute(q + " ORDER BY version DESC LIMIT 1", args).fetchone()
    return _row(r, json_fields=("rules", "provenance")) if r else None

  def summaries(self) -> list[dict]:
    return [
        _row(r, json_fields=("rules", "provenance"))
        for r in self.conn.execute("SELECT * FROM summaries ORDER BY backbone, version")
    ]

  # ---------------------------------------------------------------- planner calls
  def log_llm_call(
      self,
      study_id: int | None,
      planner: str,
      model: str | None,
      purpose: str,
      outcome: str,
      prompt_chars: int = 0,
      answer_chars: int = 0,
      prompt_tokens: int = 0,
      answer_tokens: int = 0,
      latency_s: float = 0.0,
      detail: str | None = None,
      thinking_tokens: int = 0,
  ) -> None:
    with self.transaction() as c:
      c.execute(
          "INSERT INTO llm_calls (study_id, planner, model, purpose, prompt_chars, "
          "answer_chars, prompt_tokens, answer_tokens, thinking_tokens, latency_s, outcome, "
          "detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          (
              study_id,
              planner,
              model,
              purpose,
              prompt_chars,
              answer_chars,
              prompt_tokens,
              answer_tokens,
              thinking_tokens,
              latency_s,
              outcome,
              detail,
              time.time(),
          ),
      )

  def llm_calls(self, study_id: int | None = None) -> list[dict]:
    if study_id is None:
      rows = self.conn.execute("SELECT * FROM llm_calls ORDER BY id")
    else:
      rows = self.conn.execute(
          "SELECT * FROM llm_calls WHERE study_id = ? ORDER BY id", (study_id,)
      )
    return [dict(r) for r in rows]

  def tokens_used(self, study_id: int) -> int:
    """Prompt, answer and thinking tokens of the study's planner calls."""
    row = self.conn.execute(
        "SELECT COALESCE(SUM(prompt_tokens + answer_tokens "
        "+ COALESCE(thinking_tokens, 0)), 0) FROM llm_calls "
        "WHERE study_id = ?",
        (study_id,),
    ).fetchone()
    return int(row[0])

  # ---------------------------------------------------------------- machine prices
  def machine_price(self, machine: str, device: str, compute_dtype: str) -> dict | None:
    """The probed price of a lane-epoch on `machine` and `device` (search/probe.py) with its
    probe record, or None when this machine was never probed (or the file predates the
    table: a memory opened read-only is never migrated)."""
    try:
      r = self.conn.execute(
          "SELECT * FROM machine_prices WHERE machine = ? AND device = ? AND compute_dtype = ?",
          (machine, device, compute_dtype),
      ).fetchone()
    except sqlite3.OperationalError as e:
      if "no such table" in str(e):
        return None
      raise
    return _row(r, json_fields=("price", "probe")) if r else None

  def put_machine_price(
      self,
      machine: str,
      device: str,
      compute_dtype: str,
      price: dict,
      probe: dict,
      probe_seconds: float,
  ) -> None:
    """Stores (or replaces) the probed price of `machine` and `device`."""
    with self.transaction() as c:
      c.execute(
          "INSERT INTO machine_prices (machine, device, compute_dtype, price, probe, "
          "probe_seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (machine, device, compute_dtype) DO UPDATE SET price = excluded.price, "
          "probe = excluded.probe, probe_seconds = excluded.probe_seconds, "
          "created_at = excluded.created_at",
          (
              machine,
              device,
              compute_dtype,
              json.dumps(price, sort_keys=True),
              json.dumps(probe, sort_keys=True),
              float(probe_seconds),
              time.time(),
          ),
      )


def snapshot(path: str, dest: str) -> None:
  """A consistent, self-contained copy of the SQLite file at `path` in `dest`, even while
  another process writes to it (the backup API; no WAL file beside the copy)."""
  src, out = sqlite3.connect(path), sqlite3.connect(dest)
  try:
    with out:
      src.backup(out)
    out.execute("PRAGMA journal_mode = DELETE")
  finally:
    src.close()
    out.close()


def _explain(e: Exception, path: str) -> str:
  """SQLite's error in words a user can act on."""
  text = str(e)
  if "file is not a database" in text:
    return "not a SQLite memory file (choose another --db)"
  if "malformed" in text:
    return (
        "the file is damaged (database disk image is malformed); restore a copy or start "
        "a new --db"
    )
  if "disk is full" in text or "disk I/O" in text:
    return f"cannot write ({text}); free some disk space"
  if "readonly" in text or "read-only" in text:
    return "cannot write to the file (read-only)"
  if "unable to open" in text:
    return "cannot open the file (check that the path and its directory exist and are writable)"
  return text


def _pid_alive(pid: int) -> bool:
  """Whether a process with this id exists on this host."""
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, OSError):
    return True
  return True


def _statements(sql: str) -> list[str]:
  """Splits a script into complete statements (sqlite3's own parser decides where they end)."""
  out, current = [], ""
  for line in sql.splitlines(keepends=True):
    current += line
    if sqlite3.complete_statement(current):
      if current.strip():
        out.append(current.strip())
      current = ""
  return out


def _insert(c: sqlite3.Connection, table: str, row: dict) -> None:
  """INSERT of one row given as {column: value} (columns from this module's own reads)."""
  cols = list(row)
  c.execute(
      f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
      [row[k] for k in cols],
  )


def _row(r: sqlite3.Row, json_fields=()) -> dict:
  d = dict(r)
  for k in json_fields:
    if k in d and d[k] is not None:
      d[k] = json.loads(d[k])
  return d


def _write_evidence(
    c,
    dataset_id: int,
    study_id: int | None,
    backbone: str,
    rule: str,
    key: RuleKey,
    support: list[int],
    contradict: list[int],
    confidence: float,
    source: str,
    phrase: Callable[[int, int], str] | None = None,
) -> int:
  """Store.upsert_insight inside an open transaction `c`."""
  now = time.time()
  key_json = key.to_json()
  row = c.execute(
      "SELECT id FROM insights WHERE dataset_id = ? AND backbone = ? AND key = ?",
      (dataset_id, backbone, key_json),
  ).fetchone()
  if row:
    insight_id = row["id"]
  else:
    insight_id = c.execute(
        "INSERT INTO insights (rule, support, contradict, confidence, source, study_id, "
        "updated_at, dataset_id, backbone, key, created_at) VALUES (?, '[]', '[]', 0.5, ?, ?,"
        " ?, ?, ?, ?, ?)",
        (rule, source, study_id, now, dataset_id, backbone, key_json, now),
    ).lastrowid
  c.execute(
      "DELETE FROM insight_evidence WHERE insight_id = ? AND study_id IS ?",
      (insight_id, study_id),
  )
  c.execute(
      "INSERT INTO insight_evidence (insight_id, study_id, rule, support, contradict, "
      "confidence, source, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      (
          insight_id,
          study_id,
          rule,
          json.dumps(sorted(set(support))),
          json.dumps(sorted(set(contradict))),
          float(confidence),
          source,
          now,
      ),
  )
  _merge_evidence(c, insight_id, phrase)
  return insight_id


def _merge_evidence(c, insight_id: int, phrase: Callable[[int, int], str] | None = None) -> None:
  """Sets an insight's support, contradiction and confidence to the union of every study's
  evidence (its source: the latest writer's; its text: `phrase` of the merged counts when
  several studies hold evidence, else the writer's); drops it when no evidence is left."""
  rows = c.execute(
      "SELECT * FROM insight_evidence WHERE insight_id = ? ORDER BY updated_at, rowid",
      (insight_id,),
  ).fetchall()
  if not rows:
    c.execute("DELETE FROM insights WHERE id = ?", (insight_id,))
    return
  support = sorted({i for r in rows for i in json.loads(r["support"])})
  contradict = sorted({i for r in rows for i in json.loads(r["contradict"])})
  last = rows[-1]
  rule = phrase(len(support), len(contradict)) if phrase and len(rows) > 1 else last["rule"]
  c.execute(
      "UPDATE insights SET rule = ?, support = ?, contradict = ?, confidence = ?, source = ?, "
      "study_id = ?, updated_at = ? WHERE id = ?",
      (
          rule,
          json.dumps(support),
          json.dumps(contradict),
          confidence(len(support), len(contradict)),
          last["source"],
          last["study_id"],
          last["updated_at"],
          insight_id,
      ),
  )


def _drop_evidence(c, study_id: int) -> None:
  """Removes a study's evidence from every insight and re-merges what the others hold."""
  ids = [
      r[0]
      for r in c.execute(
          "SELECT insight_id FROM insight_evidence WHERE study_id = ?", (study_id,)
      ).fetchall()
  ]
  c.execute("DELETE FROM insight_evidence WHERE study_id = ?", (study_id,))
  for insight_id in ids:
    _merge_evidence(c, insight_id)
