"""The comparison report: numbers equal direct SQL, the HTML shows its plots in Chromium."""

import shutil
import sqlite3
import subprocess

import numpy as np
import pytest

from vmle_jax.config import TrialConfig
from vmle_jax.memory.store import Store
from vmle_jax.report import load_group, write_report
from vmle_jax.report.render import COLUMNS

STRATEGIES = ("agent:heuristic", "grid", "random", "tpe")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("report")
  store = Store(str(tmp / "m.sqlite"))
  did = store.upsert_dataset({"name": "d", "sha256": "x", "users": 10})
  rng = np.random.default_rng(0)
  for strategy in STRATEGIES:
    for seed in (0, 1):
      sid = store.create_study(
          f"{strategy}-{seed}", did, "sasrec", strategy, {"trials": 8}, {"seed": seed, "group": "g"}
      )
      for bucket in range(4):  # two batches of two buckets of two lanes
        cfgs = [TrialConfig(lr=1e-4 * (1 + bucket * 2 + i), seed=seed) for i in range(2)]
        batch = 1 + bucket // 2
        ids, _ = store.start_bucket(
            sid, cfgs, [{"batch": batch, "planner_seconds": 1.0 * batch}] * 2
        )
        updates = []
        for tid in ids:
          status = "diverged" if rng.random() < 0.1 else "finished"
          v = float(rng.uniform(0.02, 0.05)) if status == "finished" else None
          updates.append(
              (
                  tid,
                  {
                      "status": status,
                      "valid": {"NDCG@10": v, "HR@10": 2 * v} if v else None,
                      "epochs": int(rng.integers(2, 6)),
                      "steps": 5 * 100,
                      "bucket_seconds": float(rng.uniform(20, 60)),
                  },
              )
          )
        # Both lanes of a bucket share its wall-clock.
        secs = updates[0][1]["bucket_seconds"]
        for _, u in updates:
          u["bucket_seconds"] = secs
        store.finish_bucket(updates)
      best = max(
          (t for t in store.finished_trials(sid) if t.status == "finished"),
          key=lambda t: t.valid["NDCG@10"],
      )
      store.update_trial(
          best.id,
          test={"NDCG@10": best.valid["NDCG@10"] * 0.8, "HR@10": best.valid["NDCG@10"] * 1.6},
      )
  out = tmp / "out"
  table = write_report(load_group(store, "g"), str(out), "test report", device="cpu")
  return {"db": str(tmp / "m.sqlite"), "out": out, "table": table}


def _sql_numbers(db, target):
  """The report's numbers computed directly in SQL (an independent implementation)."""
  conn = sqlite3.connect(db)
  v = "json_extract(valid, '$.\"NDCG@10\"')"
  ok = "status NOT IN ('diverged', 'failed')"
  one = lambda sql, *args: conn.execute(sql, args).fetchone()[0]  # noqa: E731
  out = {}
  for strategy in STRATEGIES:
    sids = [r[0] for r in conn.execute("SELECT id FROM studies WHERE strategy = ?", (strategy,))]
    best, test_n, test_hr, ttt, btt, ett, mtt, lane_epochs, planner = ([] for _ in range(9))
    trials, seconds, reached = 0, 0.0, 0
    for sid in sids:
      row = conn.execute(
          f"SELECT {v}, json_extract(test, '$.\"NDCG@10\"'), "
          f"json_extract(test, '$.\"HR@10\"') FROM trials WHERE study_id = ? AND "
          f"{ok} ORDER BY {v} DESC LIMIT 1",
          (sid,),
      ).fetchone()
      best.append(row[0])
      test_n.append(row[1])
      test_hr.append(row[2])
      first = one(
          f"SELECT MIN(t1.number) FROM trials t1 WHERE t1.study_id = ? AND (SELECT MAX({v}) "
          f"FROM trials t2 WHERE t2.study_id = t1.study_id AND t2.number <= t1.number AND "
          f"t2.{ok}) >= ?",
          sid,
          target,
      )
      budget = one("SELECT json_extract(budget, '$.trials') FROM studies WHERE id = ?", sid)
      n_batches = one("SELECT COUNT(DISTINCT batch) FROM trials WHERE study_id = ?", sid)
      total_epochs = one("SELECT SUM(epochs) FROM trials WHERE study_id = ?", sid)
      train_s = (
          "SELECT SUM(s) FROM (SELECT DISTINCT bucket, bucket_seconds AS s FROM trials "
          "WHERE study_id = ? AND batch <= ?)"
      )
      plan_s = (
          "SELECT SUM(s) FROM (SELECT DISTINCT batch, planner_seconds AS s FROM trials "
          "WHERE study_id = ? AND batch <= ?)"
      )
      if first is not None:
        reached += 1
        b = one("SELECT batch FROM trials WHERE study_id = ? AND number = ?", sid, first)
        ttt.append(one("SELECT COUNT(*) FROM trials WHERE study_id = ? AND batch <= ?", sid, b))
        btt.append(b)
        ett.append(one("SELECT SUM(epochs) FROM trials WHERE study_id = ? AND batch <= ?", sid, b))
        mtt.append((one(train_s, sid, b) + one(plan_s, sid, b)) / 60)
      else:
        ttt.append(budget + 1)
        btt.append(n_batches + 1)
        ett.append(total_epochs + 1)
      lane_epochs.append(total_epochs)
      planner.append(one(plan_s, sid, 10**6) / 60)
      trials += one("SELECT COUNT(*) FROM trials WHERE study_id = ?", sid)
      seconds += one(train_s, sid, 10**6) + one(plan_s, sid, 10**6)
    out[strategy] = {
        "seeds": len(sids),
        "trials": trials,
        "best_valid_ndcg10": np.mean(best),
        "best_valid_ndcg10_std": np.std(best),
        "test_ndcg10": np.mean(test_n),
        "test_ndcg10_std": np.std(test_n),
        "test_hr10": np.mean(test_hr),
        "trials_to_target": np.mean(ttt),
        "trials_to_target_std": np.std(ttt),
        "reached": reached,
        "batches_to_target": np.mean(btt),
        "lane_epochs_to_target": np.mean(ett),
        "lane_epochs": np.mean(lane_epochs),
        "minutes_to_target": np.mean(mtt) if mtt else None,
        "planner_minutes": np.mean(planner),
        "trials_per_hour": trials / (seconds / 3600),
    }
  return out


def test_every_number_in_report_md_equals_sql(report):
  md = open(report["out"] / "report.md").read()
  best_any = max(
      r[0]
      for r in sqlite3.connect(report["db"]).execute(
          "SELECT json_extract(valid, '$.\"NDCG@10\"') FROM trials WHERE status = 'finished'"
      )
  )
  target = 0.98 * best_any
  assert f"({best_any:.4f} -> {target:.4f})" in md
  expected = _sql_numbers(report["db"], target)
  rows = [l for l in md.splitlines() if l.startswith("| ") and not l.startswith("| strategy")]
  assert len(rows) == len(STRATEGIES)
  for line in rows:
    cells = [c.strip() for c in line.strip("|").split("|")]
    strategy = cells[0]
    for (key, _, spec, spread), cell in zip(COLUMNS[1:], cells[1:]):
      value = expected[strategy][key]
      text = "-" if value is None else spec.format(value)
      if spread and value is not None:
        text += " ± " + spec.format(expected[strategy][spread])
      assert cell == text, (strategy, key, cell, text)


def test_report_files_and_verdict(report):
  out = report["out"]
  for name in (
      "report.md",
      "report.html",
      "report.json",
      "best_vs_trials.png",
      "best_vs_minutes.png",
      "best_vs_lane_epochs.png",
  ):
    assert (out / name).exists(), name
  md = open(out / "report.md").read()
  assert "## Verdict" in md and "agent:heuristic vs random" in md
  assert "At equal compute" not in md  # a trial budget: no equal-compute verdict
  html = open(out / "report.html").read()
  assert html.count("data:image/png;base64,") == 3 and 'src="best_vs' not in html


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_html_shows_the_plots_in_headless_chromium(report, tmp_path):
  shot = tmp_path / "shot.png"
  cmd = [
      CHROMIUM,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      f"--user-data-dir={tmp_path / 'profile'}",
      f"--screenshot={shot}",
      "--window-size=1100,1800",
      f"file://{report['out'] / 'report.html'}",
  ]
  subprocess.run(cmd, capture_output=True, timeout=120)
  assert shot.exists()
  import matplotlib.image as mpimg

  pixels = (mpimg.imread(str(shot))[..., :3] * 255).astype(int)
  # matplotlib's first two line colours (C0 blue, C1 orange) are on screen: the plots rendered.
  for rgb in ((31, 119, 180), (255, 127, 14)):
    near = np.abs(pixels - np.array(rgb)).sum(axis=-1) < 40
    assert near.sum() > 200, rgb


def test_the_trials_curve_steps_at_batch_ends_as_the_tables_count():
  from vmle_jax.report.data import StudyRun

  run = StudyRun(
      name="s",
      strategy="agent",
      seed=0,
      values=[0.1, 0.5, None, 0.3, 0.2, 0.6],
      ends=[1, 1, 1, 2, 2, 3],
      steps=0,
      best_valid=None,
      best_test=None,
      batches=[1, 1, 1, 2, 2, 3],
  )
  inf = float("-inf")
  # The 0.5 of trial 2 is known when its batch (trials 1-3) ends, not before.
  assert run.best_at_batch_ends() == [inf, inf, 0.5, 0.5, 0.5, 0.6]
  assert run.trials_to(0.5) == 3 and run.trials_to(0.55) == 6
  assert run.best_so_far() == [0.1, 0.5, 0.5, 0.5, 0.5, 0.6]


def test_the_equal_compute_verdict_counts_only_what_ended_within_the_budget(tmp_path):
  from vmle_jax.report.data import comparison_table

  def run(strategy, seed, values, ends, epochs, batches):
    return _run(strategy, seed, values, ends, batches, epochs=epochs)

  runs = [
      # The agent's second batch ended at 660 s, past the 600 s budget: its 0.9 does not count.
      run("agent", 0, [0.5, 0.6, 0.9], [300, 300, 660], [8, 8, 8], [1, 1, 2]),
      run("tpe", 0, [0.2, 0.55, 0.58, 0.3], [100, 100, 500, 500], [8, 2, 8, 1], [1, 1, 2, 2]),
      run("agent", 1, [0.4, 0.7], [400, 400], [8, 8], [1, 1]),
      run("tpe", 1, [0.3, 0.71], [200, 590], [8, 8], [1, 2]),
  ]
  run_lane_epochs = runs[1].lane_epoch_ends()
  assert run_lane_epochs == [10, 10, 19, 19]
  assert runs[0].best_within(600) == 0.6 and runs[0].best_within(None, 16) == 0.6
  table = comparison_table(runs)
  eq = table["equal_budget"]
  assert eq["target"] == pytest.approx(0.98 * 0.71)  # 0.9 ended past the budget
  agent, tpe = eq["strategies"]["agent"], eq["strategies"]["tpe"]
  assert agent["per_seed"] == {0: 0.6, 1: 0.7} and tpe["per_seed"] == {0: 0.58, 1: 0.71}
  assert agent["reached"] == 1 and tpe["reached"] == 1  # 0.7 >= 0.6958; 0.71
  # Seed 0 never reached it: the budget + 1 (10 + 1 min), not what it spent within it (5 min),
  # so stopping early does not look fast; lane-epochs have no budget here: what it spent + 1.
  assert agent["minutes_to_target"] == pytest.approx((10 + 1 + 400 / 60) / 2)
  assert agent["lane_epochs_to_target"] == pytest.approx((16 + 1 + 16) / 2)
  assert agent["lane_epochs_used"] == pytest.approx((16 + 16) / 2)  # the 660 s batch is out
  # Seed by seed, minutes to TPE's own best at the budget: the agent matched seed 0's 0.58 with
  # its first batch (300 s) and never seed 1's 0.71; TPE got there at 500 s and 590 s.
  to_tpe = eq["minutes_to_best_of"]["tpe"]
  assert to_tpe["agent"] == {0: pytest.approx(5.0), 1: None}
  assert to_tpe["tpe"] == {0: pytest.approx(500 / 60), 1: pytest.approx(590 / 60)}
  write_report(runs, str(tmp_path), "equal minutes")
  md = (tmp_path / "report.md").read_text()
  assert "Minutes to tpe's own best at the budget, seed by seed (- never): agent 5.0, -;" in md
  # Every per-seed figure a results README cites has a command: the minutes to the target too.
  assert (
      "Minutes to the target, seed by seed (- never within the budget): agent -, 6.7; tpe -, 9.8."
      in md
  )
  first = md.index("## At equal compute: 10 minutes per study")
  assert first < md.index("| strategy | seeds |")  # the equal-budget verdict comes first
  assert "agent vs tpe: best at the budget at least tpe's on 1/2 seeds" in md
  assert (tmp_path / "best_vs_lane_epochs.png").exists()


def test_republishing_unchanged_state_gives_the_same_gzip_bytes(tmp_path, monkeypatch):
  """A `--report_only` republish must not churn the committed state: no name or time in the
  gzip header, and the unpacked copy is the same store."""
  import gzip

  from bench import _common

  work, dest = tmp_path / "work", tmp_path / "dest"
  work.mkdir()
  Store(str(work / "experiment.sqlite")).upsert_dataset({"name": "d", "sha256": "x", "users": 3})
  monkeypatch.setattr(_common, "LARGE_DATABASE", 0)  # gzip even this tiny file
  _common.publish(str(work), str(dest), databases=("experiment.sqlite",))
  first = (dest / "experiment.sqlite.gz").read_bytes()
  assert first[3] & 0x08 == 0 and first[4:8] == bytes(4)  # no FNAME flag, MTIME zero
  _common.publish(str(work), str(dest), databases=("experiment.sqlite",))
  assert (dest / "experiment.sqlite.gz").read_bytes() == first
  assert not (dest / "experiment.sqlite").exists()
  (tmp_path / "back.sqlite").write_bytes(gzip.decompress(first))
  assert sqlite3.connect(str(tmp_path / "back.sqlite")).execute(
      "SELECT name FROM datasets"
  ).fetchall() == [("d",)]


def _run(strategy, seed, values, ends, batches, minutes=10.0, **kw):
  from vmle_jax.report.data import StudyRun

  return StudyRun(
      name=f"{strategy}-{seed}",
      strategy=strategy,
      seed=seed,
      values=values,
      ends=ends,
      steps=0,
      best_valid={"NDCG@10": max(v for v in values if v is not None)},
      best_test=None,
      batches=batches,
      epochs=kw.pop("epochs", [4] * len(values)),
      budget=256,
      budget_minutes=minutes,
      **kw,
  )


def _section(md: str, heading: str) -> list[str]:
  """The bullet lines under `heading` up to the next heading or unbulleted paragraph."""
  lines = md[md.index(heading) + len(heading) :].strip("\n").splitlines()
  out = []
  for line in lines:
    if not line.startswith("- "):
      break
    out.append(line[2:])
  return out


def test_a_minutes_budget_report_gives_the_budgets_verdict_and_trials_only_as_secondary(
    tmp_path,
):
  """The agent is ahead at the 10 minutes on both seeds; random's best came past the budget,
  so random reached the whole-study target in fewer trials. The verdict is the budget's and
  says what the equal-budget lines say; the trial count is a secondary figure, not a verdict."""
  from vmle_jax.report.data import comparison_table
  from vmle_jax.report.render import console_lines

  runs = []
  for seed in (0, 1):
    runs.append(_run("agent", seed, [0.5, 0.6, 0.55, 0.7], [300, 300, 500, 500], [1, 1, 2, 2]))
    runs.append(_run("random", seed, [0.3, 0.9], [100, 700], [1, 2]))
  write_report(runs, str(tmp_path), "minutes")
  md = (tmp_path / "report.md").read_text()
  equal = _section(md, "(0.6860).\n\n")  # the equal-budget bullets follow its target line
  verdict = _section(md, "## Verdict\n\n")
  secondary = _section(md, "Secondary measures (not a verdict):\n\n")
  assert equal[0] == (
      "agent vs random: best at the budget at least random's on 2/2 seeds (0.7000 vs 0.3000 on "
      "average); minutes to the target 8.3 vs 11.0 (fewer)."
  )
  assert verdict == ["agent vs random at 10 minutes per study: gain: " + equal[0].split(": ", 1)[1]]
  assert "no gain" not in " ".join(verdict) and "fewer trials" not in md
  assert secondary == [
      "agent vs random: trials to the whole-study target 5.0 vs 2.0 (0/2 vs 2/2 seeds reached "
      "it); best over the whole study 0.7000 vs 0.9000."
  ]
  assert (
      md.index("## At equal compute") < md.index("## Secondary measures") < md.index("## Verdict")
  )
  # The console prints the same verdict, and the trials only as secondary.
  console = console_lines(comparison_table(runs))
  assert console[0] == "verdict: " + verdict[0]
  assert all("secondary: trials to target" in line for line in console[1:])


def _series_study(store, did, name, strategy, schedule, lane_execution, own_seconds=True):
  """Two batches of one bucket of 4 lanes, 100 s each, 400 s a bucket. The second batch
  ends at 800 s, past the 10-minute budget, but its first lane (the study's best, 0.5)
  finished at 500 s."""
  sid = store.create_study(
      name, did, "sasrec", strategy, {"trials": 256, "minutes": 10.0}, {"seed": 0, **schedule}
  )
  for batch, values in ((1, [0.1, 0.2, 0.1, 0.1]), (2, [0.5, 0.1, 0.1, 0.1])):
    proposal = {} if lane_execution is None else {"lane_execution": lane_execution}
    cfgs = [TrialConfig(lr=1e-4 * (batch * 10 + i)) for i in range(4)]
    ids, _ = store.start_bucket(
        sid, cfgs, [{"batch": batch, "planner_seconds": 0.0, "proposal": proposal}] * 4
    )
    store.finish_bucket(
        [
            (
                tid,
                {
                    "status": "finished",
                    "valid": {"NDCG@10": v},
                    "epochs": 4,
                    "seconds": 100.0 if own_seconds else 400.0 / 4,
                    "bucket_seconds": 400.0,
                },
            )
            for tid, v in zip(ids, values)
        ]
    )
  store.set_study_status(sid, "finished")


@pytest.mark.parametrize(
    "schedule,lane_execution,counted",
    [
        ({}, "serial", True),  # recorded: lanes in series, each lane's own seconds
        ({}, "vmap", False),  # recorded: vmapped lanes finish together at the batch's end
        ({"schedule": {"lane_execution": "auto"}}, None, True),  # older: auto on one CPU
        ({"schedule": {"lane_execution": "vmap"}}, None, False),
        ({"schedule": {"max_epochs": 4}}, None, False),  # before lanes could run in series
    ],
)
def test_a_trial_in_series_counts_at_its_own_finish_inside_a_batch_that_ends_past_the_budget(
    tmp_path, schedule, lane_execution, counted
):
  from vmle_jax.report.data import comparison_table

  store = Store(str(tmp_path / "m.sqlite"))
  did = store.upsert_dataset({"name": "d", "sha256": "x", "users": 10})
  _series_study(store, did, "tpe-0", "tpe", {"group": "g", **schedule}, lane_execution)
  runs = load_group(store, "g")
  assert runs[0].ends[4] == (500.0 if counted else 800.0)
  assert runs[0].lane_epoch_ends()[4] == (20 if counted else 32)
  eq = comparison_table(runs)["equal_budget"]
  assert eq["strategies"]["tpe"]["per_seed"] == {0: 0.5 if counted else 0.2}
  used = 600 if counted else 400  # the lane that ended at 600 s is within the budget too
  assert eq["strategies"]["tpe"]["minutes_used"] == pytest.approx(used / 60)
  write_report(runs, str(tmp_path / "out"), "series")
  md = (tmp_path / "out" / "report.md").read_text()
  rule = "at its own finish (its lanes ran one after another)" if counted else "at its batch's end"
  assert f"Minutes and lane-epochs count each trial when its result existed: {rule}" in md


def test_lanes_of_older_trials_share_their_bucket_by_the_epochs_each_trained():
  """A bucket recorded before per-lane seconds: 400 s over lanes of 1, 1, 2 and 4 epochs."""
  from vmle_jax.memory.records import Trial
  from vmle_jax.report.data import trial_ends

  study = {"settings": {"schedule": {"lane_execution": "auto"}}}
  trials = [
      Trial(
          id=i, study_id=1, number=i, config={}, signature="s", status="finished", bucket=0,
          batch=1, epochs=e, seconds=100.0, bucket_seconds=400.0, planner_seconds=8.0,
      )
      for i, e in enumerate((1, 1, 2, 4))
  ]  # fmt: skip
  ends, series = trial_ends(study, trials)
  assert series == [True] * 4
  assert ends == pytest.approx([8 + 50, 8 + 100, 8 + 200, 8 + 400])


def test_a_minutes_budget_no_study_came_near_reads_as_no_cap_and_spares_the_axis(tmp_path):
  """--budget_minutes=1e9 (let the trial cap decide): no '1e+09 minutes', no budget line at
  1e9 flattening the curves, and a seed that never reached the target counts as what it spent
  plus one, not as 1e9 + 1."""
  from vmle_jax.report.data import comparison_table
  from vmle_jax.report.render import _curves, equal_budget_lines
  from vmle_jax.search.budget import Budget

  runs = [
      _run("agent", 0, [0.5, 0.7], [60, 120], [1, 2], minutes=1e9),
      _run("tpe", 0, [0.4, 0.6], [90, 180], [1, 2], minutes=1e9),
  ]
  table = comparison_table(runs)
  lines = equal_budget_lines(table)
  assert lines[0] == (
      "## At equal compute: no minutes cap (--budget_minutes=1,000,000,000 is over 10x the "
      "longest study's 3.0 minutes) per study"
  )
  assert "1e+09" not in "\n".join(lines)
  assert table["equal_budget"]["strategies"]["tpe"]["minutes_to_target"] == pytest.approx(4.0)
  low, high = _curves(runs, "minutes", str(tmp_path / "m.png"), "t", None)
  assert high < 4  # minutes, spanning what the studies used
  assert Budget(trials=8, minutes=1e9).describe() == "8 trials / 1,000,000,000 min"
