"""Thin absl launchers (the only place flags are defined): vmle-train, vmle-sweep, vmle-tune,
vmle-compare, vmle-memory, vmle-data."""

if __name__ != "vmle_jax.launch":  # the layout guard: never a second, top-level copy
  raise ImportError(
      "launch/ installs as vmle_jax.launch: import vmle_jax.launch, not the bare "
      "'launch' (run from anywhere after `pip install -e .`)"
  )
