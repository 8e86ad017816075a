"""vmle-compare as a user runs it: the report and console give the budget's verdict, name only
the strategies that ran, and the study loop records what the report counts a trial by."""

import json
import sqlite3

from launcher import run_launcher

TINY = [
    "--hidden=16",
    "--blocks=1",
    "--max_len=10",
    "--num_negatives=16",
    "--epochs=2",
    "--lanes=2",
    "--budget_trials=4",
    "--verbose_epochs=false",
    "--dims=lr",
]


def test_a_compare_under_minutes_reports_the_budgets_verdict_for_what_ran(tmp_path):
  out = run_launcher(
      tmp_path,
      "compare",
      TINY + ["--strategies=agent,random", "--seeds=0", "--budget_minutes=1e9"],
      "unused",
  )
  assert out.returncode == 0, out.stderr[-2000:]
  lines = out.stdout.splitlines()
  verdict = [l for l in lines if l.startswith("verdict: ")]
  assert verdict and verdict[0].startswith(
      "verdict: agent:heuristic vs random at no minutes cap (--budget_minutes=1,000,000,000"
  )
  assert "1e+09" not in out.stdout
  md = (tmp_path / "w" / "report.md").read_text()
  assert md.startswith("# synthetic / sasrec: agent:heuristic vs random\n")  # no grid, no tpe
  assert "- " + verdict[0][len("verdict: ") :] in md  # the console's verdict is the report's
  assert (tmp_path / "w" / "best_vs_minutes.png").exists()
  # Lanes in series on one CPU device (lane_execution=auto): each trial records how its lanes
  # ran and its own seconds, which add up to its bucket's.
  rows = sqlite3.connect(tmp_path / "m.sqlite").execute(
      "SELECT bucket, study_id, seconds, bucket_seconds, proposal FROM trials"
  )
  buckets: dict = {}
  for bucket, study, seconds, bucket_seconds, proposal in rows:
    assert json.loads(proposal)["lane_execution"] == "serial"
    total = buckets.setdefault((study, bucket), [0.0, bucket_seconds])
    total[0] += seconds
  assert all(0.9 * b <= s <= b for s, b in buckets.values())
