"""One host with 8 GPUs: the lanes axis over all eight, data replicated."""

from vmle_jax.tpu_configs import base


def get_config():
  c = base.get_config()
  c.mesh_lanes = 8
  c.lanes_per_device = 128  # 1024 lanes per bucket in all
  c.compute_dtype = "bfloat16"
  c.eval_batch = 2048
  c.item_chunk = 8192
  return c
