"""Shared fixtures: the shared benchmark data (when present) and small data sets."""

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("VMLE_DATA_DIR", os.path.join(REPO, "..", "shared", "data"))


@pytest.fixture(scope="session", autouse=True)
def one_copy_of_the_package():
  """The layout guard, around the whole run: vmle_jax.models is the models/ folder of this
  checkout, and no bare `models`, `memory`, `launch` or `tpu_configs` module was loaded."""
  import sys

  def check():
    import vmle_jax.models

    assert os.path.dirname(os.path.abspath(vmle_jax.models.__file__)) == os.path.join(
        REPO, "models"
    )
    bare = [n for n in ("models", "memory", "launch", "tpu_configs") if n in sys.modules]
    assert not bare, f"bare top-level modules loaded: {bare} (import vmle_jax.<name>)"

  check()
  yield
  check()


@pytest.fixture(scope="session")
def shared_data():
  if not os.path.isdir(os.path.join(SHARED_DATA, "amazon2014")):
    pytest.skip("../shared/data is not present")
  return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic():
  from vmle_jax.data import make_synthetic

  return make_synthetic()
