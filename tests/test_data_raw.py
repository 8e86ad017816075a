"""Raw review dumps, prepared files, tensorflow-datasets, and streaming memory."""

import gzip
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vmle_jax.data import DataError, load_dataset
from vmle_jax.data.prepared import load_prepared, save_prepared
from vmle_jax.data.raw import load_amazon2014, load_amazon2018, load_amazon2023

# Users a, b, c each rate items 1..4 (a rates item 2 twice, the first rating at t=5;
# b has two items at the same time t=20: file order decides); user d rates only
# item 9 and 1 (below a 3-core); item 9 has one rating.
ROWS = [  # user, item, rating, time
    ("a", "i1", 5, 10),
    ("a", "i2", 4, 5),
    ("a", "i3", 3, 30),
    ("a", "i2", 1, 40),
    ("a", "i4", 5, 50),
    ("b", "i2", 5, 10),
    ("b", "i3", 5, 20),
    ("b", "i1", 5, 20),
    ("b", "i4", 5, 60),
    ("c", "i4", 5, 1),
    ("c", "i3", 5, 2),
    ("c", "i2", 5, 3),
    ("c", "i1", 5, 4),
    ("d", "i9", 5, 1),
    ("d", "i1", 5, 2),
]
# Expected chronological sequences after dedupe and 3-core (item ids i1..i4 -> 1..4).
EXPECTED = {"a": [2, 1, 3, 4], "b": [2, 3, 1, 4], "c": [4, 3, 2, 1]}


def _check(data):
  assert data.num_users == 3 and data.num_items == 4
  got = sorted(data.sequence(u).tolist() for u in range(3))
  assert got == sorted(EXPECTED.values())
  assert data.timestamps is not None


def test_amazon2014_csv(tmp_path):
  path = tmp_path / "ratings_Beauty.csv"
  path.write_text("".join(f"{u},{i},{r},{t}\n" for u, i, r, t in ROWS))
  _check(load_amazon2014(str(path), kcore=3))
  bad = tmp_path / "bad.csv"
  bad.write_text("a,i1,5,10\na,i2,5,later\n")
  with pytest.raises(DataError, match=r"bad\.csv line 2: timestamp 'later' is not a number"):
    load_amazon2014(str(bad), kcore=1)


@pytest.mark.parametrize("gz", [False, True])
def test_amazon2018_jsonl(tmp_path, gz):
  lines = "".join(
      json.dumps(
          {"reviewerID": u, "asin": i, "overall": r, "unixReviewTime": t, "reviewText": "nice"}
      )
      + "\n"
      for u, i, r, t in ROWS
  )
  path = tmp_path / ("Beauty.json.gz" if gz else "Beauty.json")
  if gz:
    with gzip.open(path, "wt") as f:
      f.write(lines)
  else:
    path.write_text(lines)
  _check(load_amazon2018(str(path), kcore=3))
  assert load_dataset(str(path), fmt="amazon2018", kcore=3).num_users == 3
  bad = tmp_path / "bad.json"
  bad.write_text(lines.splitlines()[0] + "\n{not json\n")
  with pytest.raises(DataError, match=r"bad\.json line 2: not valid JSON"):
    load_amazon2018(str(bad), kcore=1)
  with pytest.raises(DataError, match="ambiguous"):
    load_dataset(str(path))


def test_amazon2023_jsonl_milliseconds(tmp_path):
  path = tmp_path / "Beauty_2023.jsonl"
  path.write_text(
      "".join(
          json.dumps({"user_id": u, "parent_asin": i, "rating": r, "timestamp": t * 1000}) + "\n"
          for u, i, r, t in ROWS
      )
  )
  data = load_amazon2023(str(path), kcore=3)
  _check(data)
  assert data.timestamps.max() <= 60  # seconds, not milliseconds
  missing = tmp_path / "missing.jsonl"
  missing.write_text(json.dumps({"user_id": "a", "rating": 5, "timestamp": 1}) + "\n")
  with pytest.raises(DataError, match=r"missing\.jsonl line 1: missing field\(s\) parent_asin"):
    load_amazon2023(str(missing), kcore=1)


def test_kcore_iterates_to_a_fixed_point(tmp_path):
  # Item x is rated by u1..u3 only; u3 has 3 items but loses x's partner y (1 rating),
  # which drops u3 below 3, which drops x below 3 ... down to the fixed point.
  rows = [
      ("u1", "x"),
      ("u1", "a"),
      ("u1", "b"),
      ("u2", "x"),
      ("u2", "a"),
      ("u2", "b"),
      ("u3", "x"),
      ("u3", "y"),
      ("u3", "a"),
      ("u4", "a"),
      ("u4", "b"),
      ("u4", "x"),
      ("u5", "b"),
      ("u5", "a"),
      ("u5", "x"),
  ]
  path = tmp_path / "k.csv"
  path.write_text("".join(f"{u},{i},5,{t}\n" for t, (u, i) in enumerate(rows)))
  data = load_amazon2014(str(path), kcore=3)
  for u in range(data.num_users):
    assert len(data.sequence(u)) >= 3
  counts = np.bincount(data.items)[1:]
  assert counts.min() >= 3 and data.num_items == 3  # y is gone


def test_prepared_round_trip_and_launchers_accept_it(tmp_path, shared_data):
  data = load_dataset("ml-100k", shared_data)
  path = str(tmp_path / "ml.npz")
  save_prepared(data, path)
  back = load_dataset(path)
  assert back.fingerprint() == data.fingerprint()
  assert np.array_equal(back.timestamps, data.timestamps)
  out = subprocess.run(
      [sys.executable, "-m", "vmle_jax.launch.data", "stats", f"--input={path}"],
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert out.returncode == 0 and "interactions  100,000" in out.stdout
  corrupt = tmp_path / "c.npz"
  corrupt.write_bytes(b"not a zip")
  with pytest.raises(DataError, match="cannot read"):
    load_prepared(str(corrupt))


def test_tfds_movielens_under_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  tf = pytest.importorskip("tensorflow")
  from vmle_jax.data.tfds_loader import load_tfds

  rows = [(u, i, t) for u, i, r, t in ROWS]

  def as_dataset(self, *args, **kwargs):
    return tf.data.Dataset.from_tensor_slices(
        {
            "user_id": [r[0].encode() for r in rows],
            "movie_id": [r[1].encode() for r in rows],
            "timestamp": np.array([r[2] for r in rows], np.int64),
            "user_rating": np.ones(len(rows), np.float32),
        }
    )

  with tfds.testing.mock_data(as_dataset_fn=as_dataset):
    data = load_tfds("movielens/100k-ratings", kcore=3)
  assert data.name == "ml-100k"
  assert data.num_users == 3 and data.num_items == 4  # duplicates are kept: no dedupe here


def test_tfds_missing_extra_names_it(monkeypatch):
  import builtins

  real = builtins.__import__

  def fake(name, *a, **k):
    if name.startswith("tensorflow_datasets"):
      raise ImportError(name)
    return real(name, *a, **k)

  monkeypatch.setattr(builtins, "__import__", fake)
  from vmle_jax.data.tfds_loader import load_tfds

  with pytest.raises(DataError, match=r"pip install 'vmle-jax\[tfds\]'"):
    load_tfds("movielens/1m-ratings")


# Peak RSS from VmHWM: unlike ru_maxrss it is not inherited from the (large)
# pytest process that forked this one.
MEMORY = textwrap.dedent("""
    import json, sys
    from vmle_jax.data.raw import load_amazon2018
    data = load_amazon2018(sys.argv[1], kcore=5)
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
    print(json.dumps({"users": data.num_users, "peak_mb": int(hwm.split()[1]) / 1024}))
""")


def test_streaming_two_million_lines_stays_under_1gb(tmp_path):
  path = tmp_path / "big.json.gz"
  rng = np.random.default_rng(0)
  n = 2_000_000
  users = rng.integers(0, 150_000, n)
  items = rng.zipf(1.3, n) % 60_000
  times = rng.integers(1_300_000_000, 1_500_000_000, n)
  with gzip.open(path, "wt", compresslevel=1) as f:
    for start in range(0, n, 100_000):
      f.write(
          "".join(
              f'{{"reviewerID": "A{u:08d}", "asin": "B{i:09d}", "overall": 5.0, '
              f'"unixReviewTime": {t}, "reviewText": "fine product, would buy again"}}\n'
              for u, i, t in zip(
                  users[start : start + 100_000],
                  items[start : start + 100_000],
                  times[start : start + 100_000],
              )
          )
      )
  out = subprocess.run(
      [sys.executable, "-c", MEMORY, str(path)], capture_output=True, text=True, timeout=900
  )
  assert out.returncode == 0, out.stderr[-2000:]
  res = json.loads(out.stdout.strip().splitlines()[-1])
  assert res["users"] > 1000
  print(f"peak RSS {res['peak_mb']:.0f} MB for 2M lines")
  assert res["peak_mb"] < 1024, res
