"""Host presets (ml_collections config files): see vmle_jax/engine/presets.py."""
