"""TPU v4-8 (one host, 4 chips): lanes over the chips, bfloat16 on the MXU."""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.mesh_lanes = 4
  c.mesh_data = 1
  c.lanes_per_device = 64  # 32 GiB HBM per chip
  c.batch_size = 128
  c.compute_dtype = "bfloat16"
  c.eval_batch = 2048
  c.item_chunk = 8192
  c.multi_host = False
  return c
