"""The package layout: models/, launch/, memory/ live inside the vmle_jax namespace only."""

import os
import subprocess
import sys
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_package_directory_is_listed_in_pyproject():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    setup = tomllib.load(f)["tool"]["setuptools"]
  listed, dirs = set(setup["packages"]), setup["package-dir"]
  found = set()
  for name, root in dirs.items():
    for here, subdirs, files in os.walk(os.path.join(REPO, root)):
      subdirs[:] = [d for d in subdirs if d != "__pycache__"]
      if "__init__.py" in files:
        rel = os.path.relpath(here, os.path.join(REPO, root))
        found.add(name if rel == "." else name + "." + rel.replace(os.sep, "."))
  assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_generic_names_are_not_top_level(tmp_path):
  code = ("import vmle_jax.models, vmle_jax.launch, vmle_jax.memory\n"
          "import importlib.util\n"
          "assert importlib.util.find_spec('models') is None, 'models importable'\n"
          "assert importlib.util.find_spec('launch') is None, 'launch importable'\n"
          "assert importlib.util.find_spec('memory') is None, 'memory importable'\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
  assert out.returncode == 0, out.stderr
