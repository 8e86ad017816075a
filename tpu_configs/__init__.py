"""Host presets (ml_collections config files): see vmle_jax/engine/presets.py."""

if __name__ != "vmle_jax.tpu_configs":  # the layout guard: never a second, top-level copy
  raise ImportError(
      "tpu_configs/ installs as vmle_jax.tpu_configs: import vmle_jax.tpu_configs, not the bare "
      "'tpu_configs' (run from anywhere after `pip install -e .`)"
  )
