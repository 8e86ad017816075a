"""Backbones (one module per model) and the registry that maps a name to one.

A backbone is a Flax module built from a static `TrialConfig` view and the
number of items, with two methods used by the engine, the losses and the
evaluator:

- `encode(seq, rates, rng, positions, segments, times)` -> query vectors
  [B, L, D] (one per position; rng=None is evaluation);
- `item_table()` -> output item vectors [num_items + 1, D] (row 0 is padding).

The score of item j at a position is dot(query, item_table[j]).
"""

from __future__ import annotations

if __name__ != "vmle_jax.models":  # the layout guard: never a second, top-level copy
  raise ImportError(
      "models/ installs as vmle_jax.models: import vmle_jax.models, not the bare "
      "'models' (run from anywhere after `pip install -e .`)"
  )

from vmle_jax.models.hstu import HSTU
from vmle_jax.models.sasrec import SASRec

REGISTRY = {"sasrec": SASRec, "hstu": HSTU}


def build_model(cfg, num_items: int, compute_dtype: str = "float32"):
  """The Flax module for `cfg.backbone`, built from the static view of `cfg`.

  `compute_dtype` is the dtype of the dense layers' matmuls (bfloat16 on
  accelerators); parameters, LayerNorm, softmax and losses stay float32.
  """
  try:
    cls = REGISTRY[cfg.backbone]
  except KeyError:
    raise ValueError(f"backbone={cfg.backbone!r}: not one of {', '.join(REGISTRY)}") from None
  return cls(cfg=cfg.static_signature(), num_items=num_items, dtype=compute_dtype)
