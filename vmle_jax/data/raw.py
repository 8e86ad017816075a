"""Raw review dumps, streamed: Amazon 2014 ratings CSV, Amazon 2018 and 2023 JSON lines.

A 10 GB dump is never read into memory at once: each line is parsed as it
is read and only three compact columns are kept (user code, item code and
timestamp as int64 arrays, plus the user/item string tables). Then
`sequences_from_log` does the rest: duplicates (user, item) keep their
first interaction in time, k-core filtering to a fixed point, chronological
order with the file order as a stable tie-break, re-indexing from 1.
"""

from __future__ import annotations

import array
import csv
import gzip
import io
import json
import os

import numpy as np

from vmle_jax.data.dataset import DataError, SequenceDataset
from vmle_jax.data.formats import _name_of, quote, sequences_from_log


def _open_text(path: str):
  if not os.path.exists(path):
    raise DataError(f"data file {path}: does not exist")
  if os.path.getsize(path) == 0:
    raise DataError(f"data file {path}: is empty")
  raw = open(path, "rb")
  head = raw.read(2)
  raw.seek(0)
  stream = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
  return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace")


class _Columns:
  """Compact, growing columns: user and item codes, timestamps (int64)."""

  def __init__(self):
    self.users, self.items = {}, {}
    self.u, self.i, self.t = array.array("q"), array.array("q"), array.array("q")
    self.lines = array.array("q")

  def add(self, user: str, item: str, t: int, line: int) -> None:
    self.u.append(self.users.setdefault(user, len(self.users)))
    self.i.append(self.items.setdefault(item, len(self.items)))
    self.t.append(t)
    self.lines.append(line)

  def dataset(self, path: str, name: str, kcore: int) -> SequenceDataset:
    if not self.u:
      raise DataError(f"data file {path}: has no interaction rows")
    return sequences_from_log(
        path,
        name,
        np.frombuffer(self.u, np.int64),
        np.frombuffer(self.i, np.int64),
        np.frombuffer(self.t, np.int64),
        np.frombuffer(self.lines, np.int64),
        kcore=kcore,
        dedupe=True,
    )


def _int_time(value, path, lineno, field, scale=1):
  try:
    return int(float(value)) // scale
  except (TypeError, ValueError):
    raise DataError(
        f"data file {path} line {lineno}: {field} {quote(value)} is not a " "number"
    ) from None


def load_amazon2014(path: str, name: str | None = None, kcore: int = 5) -> SequenceDataset:
  """The 2014 ratings-only CSV: `user,item,rating,timestamp`, no header."""
  cols = _Columns()
  with _open_text(path) as f:
    for lineno, row in enumerate(csv.reader(f), 1):
      if not row:
        continue
      if len(row) < 4:
        raise DataError(
            f"data file {path} line {lineno}: {len(row)} columns, expected 4 "
            "(user, item, rating, timestamp)"
        )
      cols.add(row[0], row[1], _int_time(row[3], path, lineno, "timestamp"), lineno)
  return cols.dataset(path, name or _name_of(path), kcore)


def _load_jsonl(path, name, kcore, user_key, item_key, time_key, scale) -> SequenceDataset:
  cols = _Columns()
  with _open_text(path) as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(f"data file {path} line {lineno}: not valid JSON ({e.msg})") from None
      if not isinstance(rec, dict):
        raise DataError(f"data file {path} line {lineno}: expected a JSON object")
      missing = [k for k in (user_key, item_key, time_key) if k not in rec]
      if missing:
        raise DataError(f"data file {path} line {lineno}: missing field(s) {', '.join(missing)}")
      cols.add(
          str(rec[user_key]),
          str(rec[item_key]),
          _int_time(rec[time_key], path, lineno, time_key, scale),
          lineno,
      )
  return cols.dataset(path, name or _name_of(path), kcore)


def load_amazon2018(path: str, name: str | None = None, kcore: int = 5) -> SequenceDataset:
  """The 2018 JSON lines (reviewerID, asin, overall, unixReviewTime), gzip or not."""
  return _load_jsonl(path, name, kcore, "reviewerID", "asin", "unixReviewTime", 1)


def load_amazon2023(path: str, name: str | None = None, kcore: int = 5) -> SequenceDataset:
  """The 2023 JSON lines (user_id, parent_asin, rating, timestamp in milliseconds)."""
  return _load_jsonl(path, name, kcore, "user_id", "parent_asin", "timestamp", 1000)


LOADERS = {
    "amazon2014": load_amazon2014,
    "amazon2018": load_amazon2018,
    "amazon2023": load_amazon2023,
}
