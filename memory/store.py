"""The SQLite store behind the memory: data sets, studies, trials (and later insights).

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
import sqlite3
import time
from typing import Any, Iterable

FINAL_STATUSES = ("finished", "stopped", "diverged", "failed")
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


class StoreError(RuntimeError):
  pass


class Store:
  """One SQLite memory file; see the module docstring."""

  def __init__(self, path: str, busy_timeout_s: float = 60.0):
    self.path = path
    if os.path.dirname(path):
      os.makedirs(os.path.dirname(path), exist_ok=True)
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
        time.sleep(min(2.0, 0.05 * 2 ** i) * (0.5 + random.random()))
    raise StoreError(f"{self.path}: database stayed locked after {attempts} attempts")

  @contextlib.contextmanager
  def transaction(self):
    """BEGIN IMMEDIATE ... COMMIT, retried while another process holds the write lock."""
    self._retry(lambda: self.conn.execute("BEGIN IMMEDIATE"))
    try:
      yield self.conn
    except BaseException:
      self.conn.execute("ROLLBACK")
      raise
    else:
      self._retry(lambda: self.conn.execute("COMMIT"))

  @property
  def version(self) -> int:
    return self.conn.execute("PRAGMA user_version").fetchone()[0]

  def _migrate(self) -> None:
    with self.transaction() as c:
      current = c.execute("PRAGMA user_version").fetchone()[0]
      if current > SCHEMA_VERSION:
        raise StoreError(f"{self.path}: schema version {current} is newer than this "
                         f"vmle-jax ({SCHEMA_VERSION}); upgrade vmle-jax")
      for version, sql in schema_sections():
        if version > current:
          for statement in _statements(sql):
            c.execute(statement)
          c.execute(f"PRAGMA user_version = {version}")

  # ---------------------------------------------------------------- data sets
  def upsert_dataset(self, fingerprint: dict) -> int:
    stats = {k: v for k, v in fingerprint.items() if k not in ("name", "sha256")}
    with self.transaction() as c:
      row = c.execute("SELECT id FROM datasets WHERE sha256 = ?",
                      (fingerprint["sha256"],)).fetchone()
      if row:
        return row["id"]
      cur = c.execute("INSERT INTO datasets (name, sha256, stats, created_at) VALUES (?, ?, ?, ?)",
                      (fingerprint["name"], fingerprint["sha256"], json.dumps(stats), time.time()))
      return cur.lastrowid

  def datasets(self) -> list[dict]:
    return [_row(r, json_fields=("stats",))
            for r in self.conn.execute("SELECT * FROM datasets ORDER BY id")]

  # ---------------------------------------------------------------- studies
  def create_study(self, name: str, dataset_id: int, backbone: str, strategy: str,
                   budget: dict, settings: dict) -> int:
    now = time.time()
    with self.transaction() as c:
      if c.execute("SELECT 1 FROM studies WHERE name = ?", (name,)).fetchone():
        raise StoreError(f"study {name!r} already exists in {self.path}; pass --resume to "
                         "continue it or choose another --study name")
      cur = c.execute(
          "INSERT INTO studies (name, dataset_id, backbone, strategy, budget, settings, status,"
          " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
          (name, dataset_id, backbone, strategy, json.dumps(budget, sort_keys=True),
           json.dumps(settings, sort_keys=True), now, now))
      return cur.lastrowid

  def study(self, name_or_id) -> dict | None:
    col = "id" if isinstance(name_or_id, int) else "name"
    r = self.conn.execute(f"SELECT * FROM studies WHERE {col} = ?", (name_or_id,)).fetchone()
    return _row(r, json_fields=("budget", "settings")) if r else None

  def studies(self) -> list[dict]:
    return [_row(r, json_fields=("budget", "settings"))
            for r in self.conn.execute("SELECT * FROM studies ORDER BY id")]

  def set_study_status(self, study_id: int, status: str) -> None:
    with self.transaction() as c:
      c.execute("UPDATE studies SET status = ?, updated_at = ? WHERE id = ?",
                (status, time.time(), study_id))

  # ---------------------------------------------------------------- trials
  def reset_unfinished(self, study_id: int) -> int:
    """Deletes trials a killed run left `running`; returns how many (they will be re-run)."""
    with self.transaction() as c:
      return c.execute("DELETE FROM trials WHERE study_id = ? AND status = 'running'",
                       (study_id,)).rowcount

  def start_bucket(self, study_id: int, configs: Iterable, extra: Iterable[dict] | None = None
                   ) -> tuple[list[int], int]:
    """Registers a bucket's trials as `running` in one transaction; returns (ids, bucket)."""
    configs = list(configs)
    extra = list(extra) if extra is not None else [{}] * len(configs)
    now = time.time()
    with self.transaction() as c:
      number = c.execute("SELECT COALESCE(MAX(number), -1) + 1 FROM trials WHERE study_id = ?",
                         (study_id,)).fetchone()[0]
      bucket = c.execute("SELECT COALESCE(MAX(bucket), -1) + 1 FROM trials WHERE study_id = ?",
                         (study_id,)).fetchone()[0]
      ids = []
      for i, (cfg, ex) in enumerate(zip(configs, extra)):
        cols = {"study_id": study_id, "number": number + i, "config": cfg.canonical_json(),
                "signature": cfg.signature_key(), "bucket": bucket, "status": "running",
                "created_at": now, **ex}
        cur = c.execute(f"INSERT INTO trials ({', '.join(cols)}) VALUES "
                        f"({', '.join('?' * len(cols))})", tuple(cols.values()))
        ids.append(cur.lastrowid)
      c.execute("UPDATE studies SET updated_at = ? WHERE id = ?", (now, study_id))
      return ids, bucket

  def finish_bucket(self, updates: list[tuple[int, dict]]) -> None:
    """Writes every lane's outcome of a bucket in one transaction."""
    now = time.time()
    with self.transaction() as c:
      for trial_id, u in updates:
        u = dict(u)
        for key in ("valid", "test", "curve"):
          if key in u and not isinstance(u[key], str):
            u[key] = json.dumps(u[key])
        u["finished_at"] = now
        sets = ", ".join(f"{k} = ?" for k in u)
        c.execute(f"UPDATE trials SET {sets} WHERE id = ?", (*u.values(), trial_id))

  def update_trial(self, trial_id: int, **fields) -> None:
    with self.transaction() as c:
      for key in ("valid", "test", "curve"):
        if key in fields and not isinstance(fields[key], str):
          fields[key] = json.dumps(fields[key])
      sets = ", ".join(f"{k} = ?" for k in fields)
      c.execute(f"UPDATE trials SET {sets} WHERE id = ?", (*fields.values(), trial_id))

  def trials(self, study_id: int, statuses: Iterable[str] | None = None) -> list[dict]:
    q = "SELECT * FROM trials WHERE study_id = ?"
    args: list[Any] = [study_id]
    if statuses:
      statuses = list(statuses)
      q += f" AND status IN ({', '.join('?' * len(statuses))})"
      args += statuses
    rows = self.conn.execute(q + " ORDER BY number", args)
    return [_row(r, json_fields=("config", "valid", "test", "curve")) for r in rows]

  def finished_trials(self, study_id: int) -> list[dict]:
    return self.trials(study_id, FINAL_STATUSES)


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


def _row(r: sqlite3.Row, json_fields=()) -> dict:
  d = dict(r)
  for k in json_fields:
    if k in d and d[k] is not None:
      d[k] = json.loads(d[k])
  return d
