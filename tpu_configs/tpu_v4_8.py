"""TPU v4-8 (one host, 4 chips): lanes over the chips, bfloat16 on the MXU."""

from vmle_jax.tpu_configs import base


def get_config():
  c = base.get_config()
  c.mesh_lanes = 4
  c.lanes_per_device = 64  # 32 GiB HBM per chip
  c.compute_dtype = "bfloat16"
  c.eval_batch = 2048
  c.item_chunk = 8192
  return c
