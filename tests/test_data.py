"""Loaders, errors, synthetic data, the leave-one-out split and packing."""

import numpy as np
import pytest

from vmle_jax.data import (
    DataError,
    leave_one_out,
    load_dataset,
    load_log,
    load_recbole,
    load_s3rec,
    make_synthetic,
)
from vmle_jax.data.packing import pack_epoch, unpacked_epoch
from vmle_jax.engine.lanes import epoch_batches

# The table of ../shared/data/README.md.
EXPECTED = {
    "beauty": (22363, 12101, 198502),
    "sports": (35598, 18357, 296337),
    "toys": (19412, 11924, 167597),
    "ml-100k": (943, 1682, 100000),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_files_match_published_counts(shared_data, name):
  data = load_dataset(name, shared_data)
  assert (data.num_users, data.num_items, data.num_interactions) == EXPECTED[name]
  assert data.items.min() >= 1 and data.items.max() == data.num_items


def test_recbole_sorts_by_time_and_keeps_timestamps(shared_data):
  data = load_dataset("ml-100k", shared_data)
  assert data.timestamps is not None
  for u in range(0, data.num_users, 97):
    assert np.all(np.diff(data.times(u)) >= 0)


def _write(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_s3rec_errors_name_file_and_line(tmp_path):
  with pytest.raises(DataError, match=r"missing\.txt: does not exist"):
    load_s3rec(str(tmp_path / "missing.txt"))
  with pytest.raises(DataError, match=r"empty\.txt: is empty"):
    load_s3rec(_write(tmp_path, "empty.txt", ""))
  bad = _write(tmp_path, "bad.txt", "1 1 2 3\n2 4 abc 6\n")
  with pytest.raises(DataError, match=r"bad\.txt line 2: id 'abc' is not an integer"):
    load_s3rec(bad)
  short = _write(tmp_path, "short.txt", "1 1 2 3\n2 4 5\n3 1 2 3 4\n")
  with pytest.raises(DataError, match=r"short\.txt line 2: user 2 has 2 items"):
    load_s3rec(short)
  zero = _write(tmp_path, "zero.txt", "1 1 0 3\n")
  with pytest.raises(DataError, match=r"zero\.txt line 1: item id 0 is not positive"):
    load_s3rec(zero)


def test_recbole_and_csv_logs(tmp_path):
  inter = _write(
      tmp_path,
      "x.inter",
      "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
      "u1\ta\t5\t30\nu1\tb\t5\t10\nu1\tc\t5\t20\nu2\ta\t5\t1\nu2\tc\t5\t2\nu2\tb\t5\t2\n",
  )
  data = load_recbole(inter)
  # u1 sorted by time: b(10) c(20) a(30); u2: a(1), then the tie c, b in file order.
  a, b, c = 1, 2, 3
  assert data.sequence(0).tolist() == [b, c, a]
  assert data.sequence(1).tolist() == [a, c, b]
  bad = _write(
      tmp_path, "bad.inter", "user_id:token\titem_id:token\ttimestamp:float\nu1\ta\tnoon\n"
  )
  with pytest.raises(DataError, match=r"bad\.inter line 2: timestamp 'noon' is not a number"):
    load_recbole(bad)
  short = _write(
      tmp_path, "short.inter", "user_id:token\titem_id:token\ttimestamp:float\nu1\ta\t1\nu1\tb\t2\n"
  )
  with pytest.raises(DataError, match=r"short\.inter line 2: .*2 interactions"):
    load_recbole(short)
  log = _write(
      tmp_path,
      "log.csv",
      "user,item,timestamp\n"
      + "".join(
          f"{u},{i},{t}\n"
          for t, (u, i) in enumerate(
              [(u, i) for u in range(6) for i in range(6)] + [(9, 1), (9, 2)]
          )
      ),
  )
  data = load_log(log, kcore=5)  # user 9 (2 rows) is filtered out
  assert data.num_users == 6 and data.num_items == 6 and data.num_interactions == 36


def test_kcore_reaches_a_fixed_point():
  from vmle_jax.data.formats import kcore_mask

  users = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
  items = np.array([0, 1, 2, 0, 1, 3, 0, 1, 2, 3])
  keep = kcore_mask(users, items, 3)
  # Item 3 (2 rows) falls, then users 1 (2 rows left) falls, then item 2... fixed point.
  u, i = users[keep], items[keep]
  assert all(np.bincount(u)[np.unique(u)] >= 3) and all(np.bincount(i)[np.unique(i)] >= 3)


def test_synthetic_is_seeded_and_sequential():
  a, b = make_synthetic(seed=3), make_synthetic(seed=3)
  assert np.array_equal(a.items, b.items) and np.array_equal(a.offsets, b.offsets)
  assert not np.array_equal(make_synthetic(seed=4).items[:200], a.items[:200])
  # Sequential structure: the most frequent successor of an item is far above chance.
  pairs = {}
  for u in range(a.num_users):
    s = a.sequence(u)
    for x, y in zip(s[:-1], s[1:]):
      pairs.setdefault(int(x), []).append(int(y))
  top_share = np.mean([np.bincount(v).max() / len(v) for v in pairs.values() if len(v) >= 10])
  assert top_share > 0.3


def test_leave_one_out_targets_and_inputs():
  data = make_synthetic(num_users=50, seed=1)
  split = leave_one_out(data, max_len=8)
  for u in (0, 7, 49):
    s = data.sequence(u)
    assert split.test.targets[u] == s[-1] and split.valid.targets[u] == s[-2]
    assert split.test.inputs[u][split.test.inputs[u] != 0].tolist() == s[:-1][-8:].tolist()
    assert split.valid.inputs[u][split.valid.inputs[u] != 0].tolist() == s[:-2][-8:].tolist()
    assert set(split.valid.history[u][split.valid.history[u] != 0]) == set(s[:-2].tolist())
  assert split.train.shape[1] == 9
  row = split.train[0]
  assert row[row != 0].tolist() == data.sequence(0)[:-2][-9:].tolist()


def test_packing_reconstructs_every_user_with_positions():
  data = make_synthetic(num_users=300, seed=2)
  split = leave_one_out(data, max_len=40)
  idx = epoch_batches(len(split.train), 32, 0, 1)
  packed, plain = pack_epoch(split.train, idx), unpacked_epoch(split.train, idx)
  assert packed.rows < plain.tokens.shape[1]
  for s in range(idx.shape[0]):
    got = {}
    for r in range(packed.rows):
      for seg in range(1, packed.segments[s, r].max() + 1):
        cols = np.flatnonzero(packed.segments[s, r] == seg)
        assert np.all(np.diff(cols) == 1)  # contiguous
        got.setdefault(tuple(packed.tokens[s, r, cols]), []).append(
            packed.positions[s, r, cols].tolist()
        )
    for u in idx[s]:
      row = split.train[u]
      n = int((row != 0).sum())
      positions = got[tuple(row[row != 0])][0]
      assert positions == [max(n - 2 - j, 0) for j in range(n)]
