"""One 80 GB GPU (A100/H100): many lanes in one program, bfloat16 matmuls."""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.mesh_lanes = 1
  c.mesh_data = 1
  # SASRec at Beauty shapes needs well under 1 GB per lane; 128 lanes keep the
  # GPU busy (vmapped small matmuls batch into big ones) with room to spare.
  c.lanes_per_device = 128
  c.batch_size = 128
  c.compute_dtype = "bfloat16"
  # 128 lanes x 512 users x 8192 items x 4 bytes ~ 2 GB of scores per chunk.
  c.eval_batch = 2048
  c.item_chunk = 8192
  c.multi_host = False
  return c
