"""What a configuration costs to train: floating-point work per lane-epoch, from its shape.

The agent ranks proposals by expected gain per unit of cost, so it needs to
know, before training, that a window of 200 at width 256 with the full
softmax costs several times a window of 50 at width 64 with sampled
negatives. `lane_epoch_flops` counts the matmul work of one epoch of one lane
(every user's padded sequence forward and backward, the loss over the
catalogue or the negatives, and the validation pass that scores every item)
from the data's statistics; `relative_cost` divides two of them with a fixed
time per epoch read off this project's CPU, which orders configurations
(bench/cost_model.py checks it against the committed trials' measured
seconds). Once a study has trained, `measured_price` fits its own buckets
(seconds per TFLOP plus fixed seconds per lane-epoch), so on any machine a
proposal is priced in seconds before it runs.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

BACKWARD = 2.0  # a backward pass costs about twice the forward
# The fixed time of a lane-epoch (step dispatch, ranking the catalogue, compilation spread
# over the epochs) in FLOP-equivalents per user: what the committed trials' seconds show on
# the 2-core CPU (about 0.5-1.2 GFLOP-equivalent per user on ml-100k, Toys and Beauty).
OVERHEAD_PER_USER = 1e9
# A line splits work from fixed time only when the study's structures differ in work by at
# least this factor; closer, timing noise would decide the slope, so the prior splits it.
WORK_SPAN = 1.3


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


@dataclasses.dataclass(frozen=True)
class Price:
  """What a lane-epoch costs on this machine, fitted to a study's own buckets: seconds per
  TFLOP of work (lane_epoch_flops) plus a fixed time per lane-epoch (dispatch, ranking,
  compilation spread over the epochs)."""

  seconds_per_tflop: float
  seconds_per_lane_epoch: float

  def seconds(self, cfg: Mapping, stats: Mapping) -> float:
    """Expected seconds of one lane-epoch of `cfg`."""
    return (
        self.seconds_per_tflop * lane_epoch_flops(cfg, stats) / 1e12 + self.seconds_per_lane_epoch
    )

  def batch_seconds(self, configs: Sequence[Mapping], stats: Mapping, epochs: float) -> float:
    """Expected training seconds of a batch of `configs` that train `epochs` each."""
    return sum(epochs * self.seconds(c, stats) for c in configs)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def measured_price(trials: Sequence[Mapping], stats: Mapping) -> Price | None:
  """The study's price (None before a trial has trained). `trials` are dicts with config,
  epochs, bucket and bucket_seconds. Each bucket is a point (its work per lane-epoch, its
  seconds per lane-epoch), weighted by its lane-epochs; with structures whose work spans
  WORK_SPAN or more, a line through them splits work from fixed time on this machine (through
  the origin if the line's fixed time would be negative); otherwise the split is the
  prior's (OVERHEAD_PER_USER), scaled to the measured seconds."""
  buckets: dict = {}
  for t in trials:
    if (t.get("epochs") or 0) > 0 and t.get("config") and t.get("bucket") is not None:
      b = buckets.setdefault(t["bucket"], [t.get("bucket_seconds") or 0.0, 0, t["config"]])
      b[1] += t["epochs"]
  points = [
      (lane_epoch_flops(cfg, stats) / 1e12, seconds / epochs, epochs)
      for seconds, epochs, cfg in buckets.values()
      if seconds > 0
  ]
  if not points:
    return None
  w = sum(p[2] for p in points)
  mx = sum(p[0] * p[2] for p in points) / w
  my = sum(p[1] * p[2] for p in points) / w
  sxx = sum(p[2] * (p[0] - mx) ** 2 for p in points)
  sxy = sum(p[2] * (p[0] - mx) * (p[1] - my) for p in points)
  spread = max(p[0] for p in points) >= WORK_SPAN * min(p[0] for p in points)
  if spread and sxx > 0 and sxy > 0:
    slope = sxy / sxx
    fixed = my - slope * mx
    if fixed >= 0:
      return Price(slope, fixed)
    slope = sum(p[2] * p[0] * p[1] for p in points) / sum(p[2] * p[0] ** 2 for p in points)
    return Price(slope, 0.0)
  fixed_tflop = OVERHEAD_PER_USER * int(stats.get("users") or 1) / 1e12
  slope = my / (mx + fixed_tflop)
  return Price(slope, slope * fixed_tflop)
