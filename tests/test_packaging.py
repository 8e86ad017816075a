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


BARE = ("models", "launch", "memory", "tpu_configs")


def test_generic_names_are_not_top_level(tmp_path):
  """Elsewhere the bare names do not exist at all."""
  code = (
      "import vmle_jax.models, vmle_jax.launch, vmle_jax.memory, vmle_jax.tpu_configs\n"
      "import importlib.util\n"
      + "".join(f"assert importlib.util.find_spec({n!r}) is None, '{n} importable'\n" for n in BARE)
  )
  out = subprocess.run(
      [sys.executable, "-c", code],
      cwd=tmp_path,
      capture_output=True,
      text=True,
      env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
  )
  assert out.returncode == 0, out.stderr


def test_from_the_repository_root_a_bare_import_is_refused():
  """From the root the folders are on sys.path; their __init__ refuses to load as a copy."""
  for name in BARE:
    out = subprocess.run(
        [sys.executable, "-c", f"import {name}"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode != 0 and f"import vmle_jax.{name}" in out.stderr, (name, out.stderr)
  out = subprocess.run(
      [
          sys.executable,
          "-c",
          "import vmle_jax.models, sys; "
          "print(vmle_jax.models.__file__); assert 'models' not in sys.modules",
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
  )
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == os.path.join(REPO, "models", "__init__.py")


# Each installed command and one flag it defines itself.
COMMANDS = {
    "train": "--workdir",
    "sweep": "--strategy",
    "tune": "--planner",
    "memory": "--db",
    "compare": "--target",
    "data": "--kcore",
}


def test_help_of_each_installed_command_describes_it_and_its_flags():
  """An installed command's `__main__` is a wrapper with no docstring and no flags (as here,
  `python -c`): `--help` still prints the launcher's description and its own flags."""
  for name, own_flag in COMMANDS.items():
    code = (
        "import sys\n"
        f"from vmle_jax.launch.{name} import run\n"
        f"sys.argv = ['vmle-{name}', '--help']\n"
        "run()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    shown = out.stdout + out.stderr
    assert shown.startswith(f"vmle-{name}:"), (name, shown[:300])
    assert "\nflags:\n" in shown and f"{own_flag}:" in shown, (name, shown[-500:])
