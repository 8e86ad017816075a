"""How many lanes fit on a device: a memory estimate per lane for a static signature.

A lane holds six copies of its parameters (the parameters, their moving
average, the best-so-far copy, two Adam moments and, during a step, the
gradients), plus the activations of one step (kept for the backward pass)
and the loss logits. Estimates are deliberately rough and on the safe side; the
`--lanes` flag overrides them.
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

from vmle_jax.config import TrialConfig
from vmle_jax.models import build_model

FLOAT_BYTES = 4


@functools.lru_cache(maxsize=256)
def param_count(cfg: TrialConfig, num_items: int) -> int:
  """Exact parameter count of the signature's model (no allocation: eval_shape; cached,
  as every bucket start checks that its lanes fit)."""
  model = build_model(cfg, num_items)
  rates = {"dropout": 0.0, "attn_dropout": 0.0, "temperature": 1.0}
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), np.ones((1, cfg.max_len), np.int32), rates)
  )
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(shapes)))


def lane_bytes(cfg: TrialConfig, num_items: int, rows: int | None = None) -> int:
  """Estimated device bytes one lane needs while training."""
  rows = rows or cfg.batch_size
  tokens = rows * cfg.max_len
  params = param_count(cfg.static_signature(), num_items)  # the cache key: structure only
  state = 6 * params * FLOAT_BYTES  # params, average, best copy, 2 Adam moments, gradients
  width = cfg.hidden * max(4, 2 * cfg.ffn_mult)
  acts = tokens * width * cfg.blocks * 3 * FLOAT_BYTES
  attn = rows * cfg.heads * cfg.max_len**2 * cfg.blocks * 3 * FLOAT_BYTES
  if cfg.loss == "softmax":
    logits = tokens * (num_items + 1) * 3 * FLOAT_BYTES
  elif cfg.loss == "sampled_softmax":
    logits = tokens * (cfg.num_negatives + 1) * 3 * FLOAT_BYTES
  else:
    logits = tokens * cfg.num_negatives * cfg.hidden * 2 * FLOAT_BYTES
  return int(state + acts + attn + logits)


class LaneMemoryError(MemoryError):
  """A bucket whose lanes would not fit the device (by `lane_bytes`): refused before it
  starts, so the study marks its trials failed instead of the host killing the process."""


def check_fits(cfg: TrialConfig, num_items: int, lanes: int, device=None) -> None:
  """Raises LaneMemoryError when `lanes` lanes of `cfg` need more than the whole device."""
  need, have = lanes * lane_bytes(cfg, num_items), device_bytes(device)
  if need > have:
    raise LaneMemoryError(
        f"{lanes} lane(s) of this configuration need about {need / 2**30:.1f} GiB "
        f"(estimate), more than the device's {have / 2**30:.1f} GiB; shrink batch_size, "
        "max_len, hidden or num_negatives"
    )


def device_bytes(device=None) -> int:
  """Memory of a device: the allocator's limit on accelerators, physical RAM on CPU."""
  device = device or jax.devices()[0]
  try:
    stats = device.memory_stats() or {}
  except Exception:  # backends without memory stats
    stats = {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def lanes_per_device(
    cfg: TrialConfig, num_items: int, device=None, fraction: float = 0.5, cap: int = 256
) -> int:
  """Lanes of `cfg` that fit in `fraction` of one device's memory (at least 1, at most cap)."""
  fit = int(fraction * device_bytes(device) // max(1, lane_bytes(cfg, num_items)))
  return max(1, min(cap, fit))
