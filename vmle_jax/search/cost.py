"""What a configuration costs to train: floating-point work per lane-epoch, from its shape.

The agent ranks proposals by expected gain per unit of cost, so it needs to
know, before training, that a window of 200 at width 256 with the full
softmax costs several times a window of 50 at width 64 with sampled
negatives. `lane_epoch_flops` counts the matmul work of one epoch of one lane
(every user's padded sequence forward and backward, the loss over the
catalogue or the negatives, and the validation pass that scores every item)
from the data's statistics; `relative_cost` divides two of them. The study's
own seconds per lane-epoch turn it into minutes (search/budget.py); the count
is only asked to order configurations, which it does (bench/cost_model.py
checks it against the committed trials' measured seconds).
"""

from __future__ import annotations

from typing import Mapping, Sequence

BACKWARD = 2.0  # a backward pass costs about twice the forward
# The fixed time of a lane-epoch (step dispatch, ranking the catalogue, compilation spread
# over the epochs) in FLOP-equivalents per user: what the committed trials' seconds show on
# the 2-core CPU (about 0.5-1.2 GFLOP-equivalent per user on ml-100k, Toys and Beauty).
OVERHEAD_PER_USER = 1e9


def _block_flops_per_token(cfg: Mapping, window: int) -> float:
  """Forward matmul work of one block for one position (multiply-adds counted as 2)."""
  d, h = int(cfg["hidden"]), int(cfg.get("heads", 1))
  if cfg.get("backbone", "sasrec") == "hstu":
    ld, ad = int(cfg.get("linear_dim", 32)), int(cfg.get("attention_dim", 32))
    params = d * h * (2 * ld + 2 * ad) + h * ld * d
    mixing = 2 * window * h * (ad + ld)
  else:
    ffn = {"swiglu": 3}.get(cfg.get("ffn", "gelu"), 2) * int(cfg.get("ffn_mult", 1))
    params = (4 + ffn) * d * d
    mixing = 2 * window * d * 2
  return 2.0 * params + mixing


def _loss_flops_per_token(cfg: Mapping, items: int) -> float:
  d, loss = int(cfg["hidden"]), cfg.get("loss", "sampled_softmax")
  if loss == "softmax":
    return 2.0 * d * items
  negatives = int(cfg.get("num_negatives", 256))
  return 2.0 * d * (negatives + 1)


def lane_epoch_flops(cfg: Mapping, stats: Mapping) -> float:
  """Training plus validation work of one epoch of one lane with config `cfg` (a dict with
  the TrialConfig's fields) on data with `stats` (users, items)."""
  users, items = int(stats.get("users") or 1), int(stats.get("items") or 1)
  window, blocks = int(cfg["max_len"]), int(cfg.get("blocks", 2))
  encode = blocks * _block_flops_per_token(cfg, window)
  train = users * window * (1 + BACKWARD) * (encode + _loss_flops_per_token(cfg, items))
  validate = users * (window * encode + 2.0 * int(cfg["hidden"]) * items)
  return train + validate


def relative_cost(cfg: Mapping, reference: Mapping, stats: Mapping) -> float:
  """How many times `reference`'s time one lane-epoch of `cfg` is expected to take
  (work plus the fixed time of an epoch)."""
  fixed = OVERHEAD_PER_USER * int(stats.get("users") or 1)
  return (lane_epoch_flops(cfg, stats) + fixed) / (lane_epoch_flops(reference, stats) + fixed)


def seconds_per_reference_epoch(
    trials: Sequence[Mapping], reference: Mapping, stats: Mapping
) -> float | None:
  """The study's measured seconds per lane-epoch of `reference`: every trained bucket's
  seconds over its lane-epochs weighted by their relative cost, so one measured structure
  prices the others (None before a trial has trained). `trials` are dicts with config,
  epochs, bucket and bucket_seconds."""
  trained = [t for t in trials if (t.get("epochs") or 0) > 0 and t.get("config")]
  if not trained:
    return None
  seconds = sum({t["bucket"]: t.get("bucket_seconds") or 0.0 for t in trained}.values())
  work = sum(t["epochs"] * relative_cost(t["config"], reference, stats) for t in trained)
  return seconds / work if work > 0 and seconds > 0 else None


def batch_seconds(
    configs: Sequence[Mapping],
    reference: Mapping,
    stats: Mapping,
    per_reference_epoch: float,
    epochs_per_trial: float,
) -> float:
  """Expected training seconds of a batch of `configs` at the study's measured price."""
  return sum(
      epochs_per_trial * per_reference_epoch * relative_cost(c, reference, stats) for c in configs
  )
