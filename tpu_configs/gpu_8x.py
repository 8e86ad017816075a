"""One host with 8 GPUs: the lanes axis over all eight, data replicated."""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.mesh_lanes = 8
  c.mesh_data = 1
  c.lanes_per_device = 128  # 1024 lanes per bucket in all
  c.batch_size = 128
  c.compute_dtype = "bfloat16"
  c.eval_batch = 2048
  c.item_chunk = 8192
  c.multi_host = False
  return c
