"""The SQLite memory: records, the store, and the distillation of cognition summaries."""

if __name__ != "vmle_jax.memory":  # the layout guard: never a second, top-level copy
  raise ImportError(
      "memory/ installs as vmle_jax.memory: import vmle_jax.memory, not the bare "
      "'memory' (run from anywhere after `pip install -e .`)"
  )
