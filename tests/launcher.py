"""Runs a launcher (python -m vmle_jax.launch.<name>) in a subprocess, as a user would."""

import os
import subprocess
import sys

# A tiny model on the synthetic data: a launcher's whole study in seconds.
TINY_ARGS = [
    "--hidden=16",
    "--blocks=1",
    "--max_len=10",
    "--num_negatives=16",
    "--epochs=3",
    "--lanes=2",
    "--budget_trials=8",
    "--verbose_epochs=false",
]


def run_launcher(tmp_path, module: str, args: list, study: str, *extra, wait: bool = True):
  """The launcher on a memory and workdir in tmp_path; a Popen when not `wait`."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  cmd = [
      sys.executable,
      "-m",
      f"vmle_jax.launch.{module}",
      *args,
      f"--db={tmp_path / 'm.sqlite'}",
      f"--workdir={tmp_path / 'w'}",
      f"--study={study}",
      *extra,
  ]
  if not wait:
    return subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
  return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
