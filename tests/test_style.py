"""The tree guards its own layout and format: ruff (with the banned bare imports) and pyink."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
  return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True)


def test_ruff_finds_nothing_and_bans_bare_imports(tmp_path):
  out = _run("ruff", "check", "--no-cache", ".")
  assert out.returncode == 0, out.stdout + out.stderr
  bad = tmp_path / "bad.py"
  bad.write_text("import models\nfrom memory import store\n")
  out = _run(
      "ruff",
      "check",
      "--no-cache",
      "--output-format",
      "concise",
      "--config",
      os.path.join(REPO, "pyproject.toml"),
      str(bad),
  )
  assert out.returncode != 0 and out.stdout.count("TID251") == 2, out.stdout


def test_the_code_is_formatted():
  out = _run("pyink", "--check", "--quiet", ".")
  assert out.returncode == 0, "run `pyink .` to format:\n" + out.stdout + out.stderr
