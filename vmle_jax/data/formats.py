"""Loaders for the file formats sequential-recommendation data is published in.

- S3Rec text (`user i1 i2 ...`, one user per line, chronological): the
  Amazon benchmark files of S3Rec/FMLP-Rec/DuoRec and most papers since 2020.
- RecBole atomic `.inter` files (tab separated, typed header).
- Raw interaction logs (CSV/TSV with user, item, timestamp columns).

Raw logs go through `sequences_from_log`: k-core filter to a fixed point,
chronological order with a stable tie-break (file order), re-indexing from 1.
Every problem is a `DataError` naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from vmle_jax.data.dataset import DataError, SequenceDataset

MIN_SEQUENCE = 3  # leave-one-out needs a training item, a validation and a test target
MAX_ID = 2**31 - 1  # item ids are int32
SPARSE_FACTOR = 4  # ids this many times sparser than the distinct items are re-indexed


def quote(token, limit: int = 80) -> str:
  """A bad token for an error line: repr, cut to `limit` characters."""
  text = repr(token)
  return text if len(text) <= limit else text[: limit - 5] + "...'" + f" ({len(str(token))} chars)"


def _open_checked(path: str):
  if not os.path.exists(path):
    raise DataError(f"data file {path}: does not exist")
  if os.path.isdir(path):
    raise DataError(f"data file {path}: is a directory, expected a file")
  if os.path.getsize(path) == 0:
    raise DataError(f"data file {path}: is empty")
  return open(path, "r", encoding="utf-8-sig", errors="replace")  # a UTF-8 BOM is skipped


def _name_of(path: str) -> str:
  base = os.path.basename(path)
  for ext in (".txt", ".inter", ".csv", ".tsv", ".gz", ".json", ".jsonl"):
    if base.endswith(ext):
      base = base[: -len(ext)]
  return base.lower()


def load_s3rec(path: str, name: str | None = None) -> SequenceDataset:
  """Reads `user_id item_1 ... item_n` lines (ids positive integers, items in time order)."""
  sequences, seen_users = [], {}
  with _open_checked(path) as f:
    for lineno, line in enumerate(f, 1):
      fields = line.split()
      if not fields:
        continue
      try:
        ids = [int(tok) for tok in fields]
      except ValueError:
        bad = next(tok for tok in fields if not _is_int(tok))
        raise DataError(
            f"data file {path} line {lineno}: id {quote(bad)} is not an " "integer"
        ) from None
      user, seq = ids[0], ids[1:]
      if user in seen_users:
        raise DataError(
            f"data file {path} line {lineno}: user {user} already appeared on "
            f"line {seen_users[user]}; S3Rec files hold one line per user"
        )
      seen_users[user] = lineno
      if any(i <= 0 for i in seq):
        bad = next(i for i in seq if i <= 0)
        raise DataError(
            f"data file {path} line {lineno}: item id {quote(bad)} is not positive "
            "(ids start at 1; 0 is reserved for padding)"
        )
      if any(i > MAX_ID for i in seq):
        bad = next(i for i in seq if i > MAX_ID)
        raise DataError(
            f"data file {path} line {lineno}: item id {quote(bad)} is above "
            f"{MAX_ID:,} (ids are 32-bit); re-index the items from 1"
        )
      if len(seq) < MIN_SEQUENCE:
        raise DataError(
            f"data file {path} line {lineno}: user {user} has {len(seq)} items, "
            f"fewer than the {MIN_SEQUENCE} a leave-one-out split needs"
        )
      sequences.append(np.asarray(seq, np.int64))
  if not sequences:
    raise DataError(f"data file {path}: has no data lines")
  sequences, note = dense_items(sequences)
  return SequenceDataset.from_sequences(
      name or _name_of(path), sequences, source=path + (f" ({note})" if note else "")
  )


def dense_items(sequences: list[np.ndarray]) -> tuple[list[np.ndarray], str | None]:
  """Item ids re-indexed 1..N (in id order) when they are much sparser than the catalogue:
  the item table has one row per id, so an id of 100,000,000 among 50 items would size a
  100M-row table. Dense ids are kept as they are (the published files' ids stay valid)."""
  flat = np.concatenate(sequences)
  distinct = np.unique(flat)
  if int(distinct[-1]) <= SPARSE_FACTOR * len(distinct) + 1000:
    return sequences, None
  out = [(np.searchsorted(distinct, s) + 1).astype(np.int32) for s in sequences]
  return out, (
      f"{len(distinct):,} item ids up to {int(distinct[-1]):,} re-indexed to "
      f"1..{len(distinct):,}"
  )


def _is_int(tok: str) -> bool:
  try:
    int(tok)
    return True
  except ValueError:
    return False


def _timestamp(path: str, lineno: int, text: str) -> int:
  """A timestamp field as an int, or an error naming the file and line."""
  try:
    return int(float(text))
  except ValueError:
    raise DataError(
        f"data file {path} line {lineno}: timestamp {quote(text)} is not a " "number"
    ) from None


def kcore_mask(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
  """Rows kept by iterated k-core filtering (every user and item has >= k rows)."""
  keep = np.ones(len(users), bool)
  if k <= 1:
    return keep
  while True:
    u_counts = np.bincount(users[keep], minlength=users.max() + 1)
    i_counts = np.bincount(items[keep], minlength=items.max() + 1)
    new_keep = keep & (u_counts[users] >= k) & (i_counts[items] >= k)
    if new_keep.sum() == keep.sum():
      return new_keep
    keep = new_keep


def sequences_from_log(
    path: str,
    name: str,
    user_tokens,
    item_tokens,
    times,
    line_numbers,
    kcore: int = 0,
    dedupe: bool = False,
) -> SequenceDataset:
  """Turns interaction rows into chronological per-user sequences.

  Rows are sorted per user by time, ties kept in file order. Users and items
  are re-indexed (items from 1). With `dedupe`, a repeated (user, item) pair
  keeps its first occurrence in time. `kcore` filters to a fixed point.
  """
  if len(user_tokens) == 0:
    raise DataError(f"data file {path}: has no interaction rows")
  _, users = np.unique(np.asarray(user_tokens), return_inverse=True)
  _, items = np.unique(np.asarray(item_tokens), return_inverse=True)
  times = np.asarray(times, np.int64)
  lines = np.asarray(line_numbers, np.int64)
  order = np.lexsort((lines, times, users))
  users, items, times, lines = users[order], items[order], times[order], lines[order]
  if dedupe:
    pair = users.astype(np.int64) * (items.max() + 1) + items
    _, first = np.unique(pair, return_index=True)
    keep = np.zeros(len(pair), bool)
    keep[first] = True
    users, items, times, lines = users[keep], items[keep], times[keep], lines[keep]
  keep = kcore_mask(users, items, kcore)
  users, items, times, lines = users[keep], items[keep], times[keep], lines[keep]
  if len(users) == 0:
    raise DataError(f"data file {path}: no interactions survive {kcore}-core filtering")
  counts = np.bincount(users)
  short = np.flatnonzero((counts > 0) & (counts < MIN_SEQUENCE))
  if len(short):
    first_row = int(lines[np.searchsorted(users, short[0])])
    raise DataError(
        f"data file {path} line {first_row}: this row's user has {counts[short[0]]} "
        f"interactions, fewer than the {MIN_SEQUENCE} a leave-one-out split needs "
        f"({len(short)} such users); filter them with a k-core of at least {MIN_SEQUENCE}"
    )
  # Re-index: users 0..U-1 in id order, items 1..N in id order.
  _, users = np.unique(users, return_inverse=True)
  item_ids, items = np.unique(items, return_inverse=True)
  items = (items + 1).astype(np.int32)
  offsets = np.concatenate([[0], np.cumsum(np.bincount(users))]).astype(np.int64)
  return SequenceDataset(
      name=name,
      items=items,
      offsets=offsets,
      num_items=len(item_ids),
      timestamps=times,
      source=path,
  )


def load_recbole(path: str, name: str | None = None, kcore: int = 0) -> SequenceDataset:
  """Reads a RecBole atomic `.inter` file (`user_id:token\\titem_id:token\\t...timestamp:float`)."""
  with _open_checked(path) as f:
    header = f.readline().rstrip("\n").split("\t")
    fields = [h.split(":")[0] for h in header]
    for needed in ("user_id", "item_id", "timestamp"):
      if needed not in fields:
        raise DataError(
            f"data file {path} line 1: header {header} has no '{needed}' field "
            "(RecBole .inter needs user_id, item_id and timestamp)"
        )
    ui, ii, ti = fields.index("user_id"), fields.index("item_id"), fields.index("timestamp")
    users, items, times, lines = [], [], [], []
    for lineno, line in enumerate(f, 2):
      row = line.rstrip("\n").split("\t")
      if row == [""]:
        continue
      if len(row) != len(fields):
        raise DataError(
            f"data file {path} line {lineno}: {len(row)} fields, the header has " f"{len(fields)}"
        )
      t = _timestamp(path, lineno, row[ti])
      users.append(row[ui])
      items.append(row[ii])
      times.append(t)
      lines.append(lineno)
  return sequences_from_log(path, name or _name_of(path), users, items, times, lines, kcore=kcore)


_USER_NAMES = ("user", "user_id", "userid", "uid", "reviewerid")
_ITEM_NAMES = ("item", "item_id", "itemid", "iid", "asin", "movie_id", "product_id")
_TIME_NAMES = ("timestamp", "time", "ts", "unixreviewtime", "datetime")


def load_log(
    path: str,
    name: str | None = None,
    kcore: int = 5,
    delimiter: str | None = None,
    dedupe: bool = False,
) -> SequenceDataset:
  """Reads a CSV/TSV interaction log with user, item and timestamp columns.

  A header naming the columns (user/user_id, item/item_id, timestamp/time) is
  used when present; without one the columns are user, item, timestamp in that
  order. Timestamps must be integers or floats (seconds or any monotone unit).
  """
  if delimiter is None:
    delimiter = "\t" if path.endswith((".tsv", ".tab")) else None
  with _open_checked(path) as f:
    first = f.readline()
    if delimiter is None:
      delimiter = "\t" if "\t" in first else ("," if "," in first else " ")
    head = [h.strip().lower() for h in next(csv.reader([first], delimiter=delimiter))]
    cols = _header_columns(head)
    users, items, times, lines = [], [], [], []
    rows = csv.reader(f, delimiter=delimiter)
    start = 2
    if cols is None:
      cols = (0, 1, 2)
      rows = _chain([head], rows)
      start = 1
    ui, ii, ti = cols
    for lineno, row in enumerate(rows, start):
      if not row or (len(row) == 1 and not row[0].strip()):
        continue
      if len(row) <= max(cols):
        raise DataError(
            f"data file {path} line {lineno}: {len(row)} columns, expected at least "
            f"{max(cols) + 1} (user, item, timestamp)"
        )
      t = _timestamp(path, lineno, row[ti])
      users.append(row[ui].strip())
      items.append(row[ii].strip())
      times.append(t)
      lines.append(lineno)
  return sequences_from_log(
      path, name or _name_of(path), users, items, times, lines, kcore=kcore, dedupe=dedupe
  )


def _header_columns(head):
  def find(names):
    return next((i for i, h in enumerate(head) if h.split(":")[0] in names), None)

  u, i, t = find(_USER_NAMES), find(_ITEM_NAMES), find(_TIME_NAMES)
  if u is None or i is None or t is None:
    return None
  return u, i, t


def _chain(first, rest):
  yield from first
  yield from rest
