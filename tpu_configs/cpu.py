"""CPU host (the default): the base values; lanes give no speed-up here, so a modest lane count."""

from vmle_jax.tpu_configs import base


def get_config():
  return base.get_config()
