"""One 80 GB GPU (A100/H100): many lanes in one program, bfloat16 matmuls."""

from vmle_jax.tpu_configs import base


def get_config():
  c = base.get_config()
  c.mesh_lanes = 1
  # SASRec at Beauty shapes needs well under 1 GB per lane; 128 lanes keep the
  # GPU busy (vmapped small matmuls batch into big ones) with room to spare.
  c.lanes_per_device = 128
  c.compute_dtype = "bfloat16"
  # 128 lanes x 512 users x 8192 items x 4 bytes ~ 2 GB of scores per chunk.
  c.eval_batch = 2048
  c.item_chunk = 8192
  return c
