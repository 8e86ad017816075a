"""CPU host (the default): lanes give no speed-up here, so a modest lane count."""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.mesh_lanes = -1  # every device on the lanes axis (fake devices in tests)
  c.mesh_data = 1
  c.lanes_per_device = 8
  c.batch_size = 128
  c.compute_dtype = "float32"  # bfloat16 matmuls are slow on most CPUs
  c.eval_batch = 1024
  c.item_chunk = 4096
  c.multi_host = False
  return c
