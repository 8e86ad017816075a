"""TPU v5e-16 (4 hosts x 4 chips, multi-host): lanes over 8 chips, each lane's batch over 2.

Launch the same command on every host with --distributed (see the README).
"""

from vmle_jax.tpu_configs import base


def get_config():
  c = base.get_config()
  c.mesh_lanes = 8
  c.mesh_data = 2  # each lane's batch rows split over two chips (16 GiB HBM each)
  c.lanes_per_device = 32
  c.batch_size = 256
  c.compute_dtype = "bfloat16"
  c.item_chunk = 8192
  return c
