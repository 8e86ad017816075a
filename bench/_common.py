"""Helpers shared by the benchmark scripts (not installed: bench/ runs from the repo)."""

from __future__ import annotations

import os
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.environ.get("VMLE_DATA_DIR", os.path.join(REPO, "..", "shared", "data"))


def machine() -> str:
  """Device and host in a few words, for the one-line result."""
  from vmle_jax.training import device_description
  return device_description()


def today() -> str:
  return time.strftime("%Y-%m-%d")


def start(argv) -> None:
  """What every launcher does first: reject stray arguments, quiet library INFO logs."""
  from vmle_jax.launch.common import reject_positional
  reject_positional(argv)


def fail(message: str) -> None:
  """One line on stderr and exit status 2, as the launchers do."""
  from vmle_jax.launch.common import fail as _fail
  _fail(message)
