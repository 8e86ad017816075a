"""Shared fixtures: the shared benchmark data (when present) and small data sets."""

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("VMLE_DATA_DIR", os.path.join(REPO, "..", "shared", "data"))


@pytest.fixture(scope="session")
def shared_data():
  if not os.path.isdir(os.path.join(SHARED_DATA, "amazon2014")):
    pytest.skip("../shared/data is not present")
  return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic():
  from vmle_jax.data import make_synthetic
  return make_synthetic()
