"""Every bad input is one line naming the flag, file or line, exit status 2, nothing written."""

import os
import sqlite3
import stat
import subprocess
import sys

import numpy as np
import pytest

from vmle_jax.config import TrialConfig
from vmle_jax.data import load_s3rec
from vmle_jax.memory.store import Store

TINY = [
    "--hidden=16",
    "--blocks=1",
    "--max_len=10",
    "--epochs=1",
    "--budget_trials=2",
    "--lanes=2",
    "--verbose_epochs=false",
    "--dims=lr",
]


def _s3rec(path, users=60, extra=None, bom=False, rng=np.random.default_rng(0)):
  lines = []
  for u in range(1, users + 1):
    items = [str(i) for i in rng.integers(1, 50, size=8)] + ([str(extra)] if extra else [])
    lines.append(" ".join([str(u)] + items))
  path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp("inputs")
  out = {"dir": d}
  out["bigid"] = _s3rec(d / "bigid.txt", extra=3_000_000_000)
  out["badtoken"] = str(d / "badtoken.txt")
  (d / "badtoken.txt").write_text("1 2 3 " + "x" * 5_000_000 + "\n")
  out["notdb"] = str(d / "notdb.sqlite")
  (d / "notdb.sqlite").write_text("not a database " * 100)
  out["truncated"] = str(d / "truncated.sqlite")  # a real memory, cut in half
  store = Store(out["truncated"])
  sid = store.create_study(
      "s", store.upsert_dataset({"name": "d", "sha256": "x"}), "sasrec", "random", {}, {}
  )
  for i in range(200):
    ids, _ = store.start_bucket(sid, [TrialConfig(lr=1e-4 * (i + 1))])
    store.finish_bucket([(ids[0], {"status": "finished", "curve": [{"epoch": 1}] * 50})])
  store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
  store.close()
  with open(out["truncated"], "r+b") as f:
    f.truncate(os.path.getsize(out["truncated"]) // 2)
  out["list_summary"] = str(d / "list.json")
  (d / "list.json").write_text("[1, 2, 3]")
  out["norules"] = str(d / "norules.json")
  (d / "norules.json").write_text(
      '{"format": "vmle-jax cognition summary v1", "backbone": "sasrec"}'
  )
  out["hstu_summary"] = str(d / "hstu.json")
  (d / "hstu.json").write_text(
      '{"format": "vmle-jax cognition summary v2", "backbone": "hstu", "rules": []}'
  )
  out["future_summary"] = str(d / "future.json")
  (d / "future.json").write_text(
      '{"format": "vmle-jax cognition summary v9", "backbone": "sasrec", "rules": []}'
  )
  ro = d / "readonly"
  ro.mkdir()
  out["readonly_dir"] = str(ro)
  return out


# (launcher, arguments, expected fragment of the one-line error)
CASES = [
    ("sweep", ["--dataset={bigid}"], "line 1: item id 3000000000 is above 2,147,483,647"),
    ("sweep", ["--dataset={badtoken}"], "chars)"),  # the 5 MB token is cut, not echoed
    ("sweep", ["--db={notdb}"], "not a SQLite memory file"),
    ("sweep", ["--db={truncated}"], "the file is damaged"),
    ("memory", ["studies", "--db={truncated}"], "the file is damaged"),
    ("sweep", ["--db={dir}"], "is a directory"),
    ("sweep", ["--db={readonly_dir}/m.sqlite"], "is not writable"),
    ("sweep", ["--budget_trials=0"], "--budget_trials=0: must be at least 1"),
    ("sweep", ["--budget_trials=-3"], "--budget_trials=-3: must be at least 1"),
    ("sweep", ["--budget_minutes=-1"], "--budget_minutes=-1.0: must be a positive"),
    ("sweep", ["--lr=nan"], "lr=nan: must be a finite number"),
    ("sweep", ["--lr=inf"], "lr=inf: must be a finite number"),
    ("sweep", ["--weight_decay=nan"], "weight_decay=nan: must be a finite number"),
    ("sweep", ["--temperature=inf"], "temperature=inf: must be a finite number"),
    ("sweep", ["--init_std=nan"], "init_std=nan: must be a finite number"),
    ("sweep", ["--study=../escape"], "--study='../escape': a study name is a file name"),
    ("sweep", ["--resume", "--study=missing"], "there is no study 'missing'"),
    ("tune", ["--summary_from={list_summary}"], "not a vmle-jax cognition summary"),
    ("tune", ["--summary_from={norules}"], "needs a 'backbone' name and a 'rules' list"),
    ("tune", ["--summary_from={hstu_summary}"], "is for backbone 'hstu', this study tunes"),
    ("compare", ["--summary_from={hstu_summary}"], "is for backbone 'hstu', this study tunes"),
    ("tune", ["--summary_from={future_summary}"], "is not one this vmle-jax reads (v1, v2)"),
    ("tune", ["--llm_retries=0"], "--llm_retries=0: must be at least 1"),
    ("tune", ["--tpe_share=1"], "--tpe_share must be in [0, 1)"),
    ("compare", ["--summary_from={list_summary}"], "not a vmle-jax cognition summary"),
    # Refused before any data is loaded or any study trains (a repeat trained the first study
    # to its end, then failed on the second).
    ("compare", ["--strategies=agent,agent"], "--strategies=agent,agent: agent given twice"),
    ("compare", ["--seeds=0,0"], "--seeds=0,0: 0 given twice"),
    ("compare", ["--seeds="], "--seeds is empty: give one or more integer seeds"),
    ("compare", ["--strategies="], "--strategies is empty: give one or more of agent, grid"),
    ("compare", ["--strategies=agent,bogus"], "--strategies: bogus not among agent, grid"),
    (
        "compare",
        ["--early_stop=foo"],
        "flag --early_stop=foo: value should be one of <none|median|median-guarded>",
    ),
    ("sweep", ["--strategy=agent"], "flag --strategy=agent: value should be one of <grid|"),
    ("tune", ["--dims="], "--dims is empty: name the dimensions to search"),
    ("compare", ["--dims="], "--dims is empty: name the dimensions to search"),
    ("tune", ["--dims=dropout", "--dropout=0.3"], "nothing left to search: every dimension"),
    ("sweep", ["--dims=lr", "--lr=0.002"], "nothing left to search: every dimension"),
    ("memory", ["studies", "--db={notdb}"], "not a SQLite memory file"),
]


@pytest.mark.parametrize(
    "launcher,args,fragment", CASES, ids=[f"{c[0]}:{c[1][0][:40]}" for c in CASES]
)
def test_bad_input_is_one_line_and_writes_nothing(files, tmp_path, launcher, args, fragment):
  if "{readonly_dir}" in " ".join(args) and os.geteuid() == 0:
    pytest.skip("root writes into read-only directories")
  args = [a.format(**files) for a in args]
  if launcher != "memory":
    args = TINY + args
    if not any(a.startswith("--db") for a in args):
      args.append(f"--db={tmp_path / 'm.sqlite'}")
  os.chmod(files["readonly_dir"], stat.S_IRUSR | stat.S_IXUSR)
  before = {p: os.path.getmtime(p) for p in (files["notdb"], files["truncated"])}
  out = subprocess.run(
      [sys.executable, "-m", f"vmle_jax.launch.{launcher}", *args],
      cwd=tmp_path,
      capture_output=True,
      text=True,
      timeout=300,
  )
  lines = [l for l in out.stderr.splitlines() if l.strip() and not l.startswith("[]")]
  assert out.returncode == 2, out.stderr[-2000:]
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-2000:]
  assert fragment in lines[0], lines[0]
  assert len(lines[0]) < 400  # a bad token is quoted in at most ~80 characters
  assert "Traceback" not in out.stderr
  assert not (tmp_path / "m.sqlite").exists() or launcher == "sweep" and "--resume" in args
  assert not (tmp_path / "runs").exists()
  assert before == {p: os.path.getmtime(p) for p in before}


EXPERIMENT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench", "experiment.py")
EXPERIMENT_CASES = [
    (["--data_dir={dir}/none"], "data set 'ml-100k': not found under --data_dir="),
    (["--seeds=0,0"], "--seeds=0,0: 0 given twice"),
    (["--seeds="], "--seeds is empty"),
    (["--strategies=agent,agent"], "--strategies=agent,agent: agent given twice"),
    (["--strategies="], "--strategies is empty"),
    (["--groups=toys/sasrec,toys/sasrec"], "--groups=toys/sasrec,toys/sasrec: toys/sasrec given"),
    (["--early_stop=foo"], "flag --early_stop=foo: value should be one of <none|median|"),
]


def _bench_refuses(script: str, args: list[str], workdir, tmp_path, fragment: str) -> None:
  """A bench script's bad flag: one line, exit 2, and no work directory or state left."""
  out = subprocess.run(
      [sys.executable, script, f"--workdir={workdir}", *args],
      cwd=tmp_path,
      capture_output=True,
      text=True,
      timeout=300,
  )
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  assert out.returncode == 2, out.stderr[-2000:]
  assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
  assert not workdir.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args,fragment", EXPERIMENT_CASES, ids=[c[0][0] for c in EXPERIMENT_CASES])
def test_the_experiment_refuses_bad_flags_in_one_line_and_writes_nothing(
    files, tmp_path, args, fragment
):
  """bench/experiment.py: a missing data directory or a bad list is one line, exit 2, before
  any state file or work directory exists."""
  args = [a.format(**files) for a in args]
  _bench_refuses(EXPERIMENT, args, tmp_path / "ex", tmp_path, fragment)


TRANSFER = os.path.join(os.path.dirname(EXPERIMENT), "transfer.py")
TRANSFER_CASES = [
    (["--targets=bogus"], "--targets: bogus not among toys, sports, ml-100k"),
    (["--arms=agent,agent"], "--arms=agent,agent: agent given twice"),
    (["--sources_from={dir}/none.sqlite"], "--sources_from: no memory at"),
    (["--seeds="], "--seeds is empty"),
    (["--arms=agent-summary", "--rerun_arms=tpe-warm"], "--rerun_arms: tpe-warm not among"),
    (["--rerun_arms=agent-summary", "--report_only"], "--rerun_arms trains"),
]


@pytest.mark.parametrize("args,fragment", TRANSFER_CASES, ids=[c[0][0] for c in TRANSFER_CASES])
def test_the_transfer_at_equal_minutes_refuses_bad_flags_in_one_line(
    files, tmp_path, args, fragment
):
  args = ["--budget=minutes"] + [a.format(**files) for a in args]
  _bench_refuses(TRANSFER, args, tmp_path / "tr", tmp_path, fragment)


def test_bom_and_sparse_ids_are_read(tmp_path):
  """A UTF-8 byte-order mark is not part of the first id; sparse ids are re-indexed."""
  data = load_s3rec(_s3rec(tmp_path / "bom.txt", bom=True))
  assert data.num_users == 60
  sparse = load_s3rec(_s3rec(tmp_path / "sparse.txt", extra=100_000_000))
  assert sparse.num_items <= 50 and "re-indexed" in sparse.source
  csv = tmp_path / "log.csv"
  csv.write_text(
      "\ufeffuser,item,timestamp\n"
      + "".join(f"{u},{i},{t}\n" for u in range(5) for t, i in enumerate((1, 2, 3, 4))),
      encoding="utf-8",
  )
  from vmle_jax.data import load_log

  assert load_log(str(csv), kcore=1).num_users == 5


def test_fewer_users_than_a_batch_trains(tmp_path):
  """60 users and a batch of 128: the epoch is topped up, the trials finish."""
  path = _s3rec(tmp_path / "small.txt")
  out = subprocess.run(
      [
          sys.executable,
          "-m",
          "vmle_jax.launch.sweep",
          *TINY,
          f"--dataset={path}",
          f"--db={tmp_path / 'm.sqlite'}",
      ],
      cwd=tmp_path,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert out.returncode == 0, out.stderr[-2000:]
  statuses = {
      r[0] for r in sqlite3.connect(tmp_path / "m.sqlite").execute("SELECT status FROM trials")
  }
  assert statuses <= {"finished", "stopped", "pruned"}


def test_piping_into_head_is_not_an_error(tmp_path):
  path = _s3rec(tmp_path / "small.txt")
  subprocess.run(
      [
          sys.executable,
          "-m",
          "vmle_jax.launch.sweep",
          *TINY,
          f"--dataset={path}",
          f"--db={tmp_path / 'm.sqlite'}",
      ],
      cwd=tmp_path,
      capture_output=True,
      timeout=300,
      check=True,
  )
  out = subprocess.run(
      f"{sys.executable} -m vmle_jax.launch.memory trials "
      f"--db={tmp_path / 'm.sqlite'} --study=small-sasrec-random-s0 "
      "| head -c 10",
      shell=True,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


class _FullDisk:
  """A connection whose writes fail as SQLite's do when the disk is full."""

  def __init__(self, conn):
    self.conn = conn

  def execute(self, sql, *args):
    if sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
      raise sqlite3.OperationalError("database or disk is full")
    return self.conn.execute(sql, *args)

  def __getattr__(self, name):
    return getattr(self.conn, name)


def test_a_full_disk_is_a_store_error_and_rolls_back(tmp_path):
  from vmle_jax.memory.store import StoreError

  store = Store(str(tmp_path / "m.sqlite"))
  did = store.upsert_dataset({"name": "d", "sha256": "x"})
  store.conn = _FullDisk(store.conn)
  with pytest.raises(StoreError, match=r"--db=.*cannot write \(database or disk is full\); free"):
    store.create_study("s", did, "sasrec", "random", {}, {})
  store.conn = store.conn.conn
  assert store.studies() == []  # nothing half-written
  store.create_study("s", did, "sasrec", "random", {}, {})  # and the store still works


def test_memory_trials_without_a_study_names_the_flag_and_the_studies(tmp_path):
  from vmle_jax.memory.store import Store

  store = Store(str(tmp_path / "m.sqlite"))
  ds = store.upsert_dataset({"name": "d", "sha256": "x", "users": 1})
  store.create_study("first", ds, "sasrec", "random", {}, {})
  store.close()
  out = subprocess.run(
      [sys.executable, "-m", "vmle_jax.launch.memory", "trials", f"--db={tmp_path / 'm.sqlite'}"],
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
  assert "trials needs --study" in out.stderr and "first" in out.stderr
