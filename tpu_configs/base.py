"""The fields every host preset sets, at their CPU values; each preset changes what differs."""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.mesh_lanes = -1  # every device on the lanes axis (fake devices in tests)
  c.mesh_data = 1  # each lane's batch on one device
  c.lanes_per_device = 8  # a CPU gains nothing from more lanes (bench/lanes.py)
  c.batch_size = 128  # users per step, the papers' SASRec setting
  c.compute_dtype = "float32"  # bfloat16 matmuls are slow on most CPUs
  c.eval_batch = 1024  # users per evaluation chunk
  c.item_chunk = 4096  # items scored at once in full ranking
  return c
