"""What a configuration costs to train: floating-point work per lane-epoch, from its shape.

The agent ranks proposals by expected gain per unit of cost, so it needs to
know, before training, that a window of 200 at width 256 with the full
softmax costs several times a window of 50 at width 64 with sampled
negatives. `lane_epoch_flops` counts the work of one epoch of one lane from
the data's statistics as the engine lays it out: the packed training rows
(short users share a row, so a window of 200 on sequences of 9 items costs
little more than a window of 50) forward and backward with the loss over the
catalogue or the negatives at every position, AdamW over every parameter, and
the validation pass that encodes each user's trimmed input and ranks every
item. `relative_cost` divides two of them with a fixed time per epoch read
off this project's CPU, which orders configurations (bench/cost_model.py).

A `Price` turns work into seconds on one machine: seconds per TFLOP, a fixed
time per lane-epoch and, for a batch, the compilation of each structure it
trains. Before a study has trained anything its price is this machine's,
measured once by a short probe and kept in the memory (search/probe.py);
once it has, `measured_price` fits its own buckets, so on any machine a
proposal is priced in seconds before it runs (bench/price.py compares a first
batch's price with its measured time).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

from vmle_jax.config import STATIC_FIELDS

BACKWARD = 2.0  # a backward pass costs about twice the forward
# The fixed time of a lane-epoch (step dispatch, ranking the catalogue, compilation spread
# over the epochs) in FLOP-equivalents per user: what the committed trials' seconds show on
# the 2-core CPU (about 0.5-1.2 GFLOP-equivalent per user on ml-100k, Toys and Beauty).
OVERHEAD_PER_USER = 1e9
# A line splits work from fixed time only when the study's structures differ in work by at
# least this factor; closer, timing noise would decide the slope, so the prior splits it.
WORK_SPAN = 1.3
# AdamW's update of every parameter and the item table's dense gradient, per parameter and
# step, in FLOP-equivalents (memory-bound work: it reads and writes the table several times).
OPTIMIZER_FLOPS = 20.0
# Ranking one item for one user beyond its score: the comparison with the target's score.
RANK_FLOPS = 2.0
# The fixed time of a lane-epoch beside its work (dispatching the epoch and the ranking,
# packing the batches, the metrics on the host) in FLOP-equivalents: about 0.15 s at the
# 2-core CPU's 35 GFLOP/s, which is what separates small data sets' epochs from their work.
FIXED_FLOPS_PER_LANE_EPOCH = 5e9
MIN_ROWS = 8  # data/packing.py: a packed batch has a multiple of 8 rows, at least 8
EVAL_WIDTHS = (8, 16, 32, 64, 128, 256)  # engine/lanes.py eval_groups: validation input widths
LENGTH_POINTS = 40  # equal-mass points that stand for the data's sequence lengths
COMPILE_PER_EVAL_WIDTH = 0.13  # compile_units: a ranking input width against one block


def _block_flops_per_token(cfg: Mapping, window: int) -> float:
  """Forward matmul work of one block for one position attending over `window` positions
  (multiply-adds counted as 2)."""
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


def _parameters(cfg: Mapping, items: int) -> float:
  """Trainable parameters: the item table(s), positions and the blocks' dense weights."""
  d, blocks = int(cfg["hidden"]), int(cfg.get("blocks", 2))
  tables = (1 if cfg.get("tie_embeddings", True) else 2) * (items + 1) * d
  return tables + int(cfg["max_len"]) * d + blocks * _block_flops_per_token(cfg, 0) / 2.0


def sequence_lengths(stats: Mapping, points: int = LENGTH_POINTS) -> list[float] | None:
  """Equal-mass points of the data's sequence lengths (items per user), from the stats'
  quantiles and mean: linear between the quantiles up to p90, and over the top decile a
  line from p90 whose mean is what avg_len leaves for it (capped at the longest); None
  when the stats have no lengths (then every row is taken as full)."""
  q, avg = stats.get("len_quantiles"), stats.get("avg_len")
  if not q or not avg:
    return None
  knots = [(0.0, q["min"]), (0.25, q["p25"]), (0.5, q["p50"]), (0.75, q["p75"]), (0.9, q["p90"])]
  below = sum((p1 - p0) * (a + b) / 2 for (p0, a), (p1, b) in zip(knots, knots[1:]))
  top = min(max((avg - below) / 0.1, q["p90"]), q["max"])
  knots.append((1.0, min(q["max"], 2 * top - q["p90"])))
  out = []
  for i in range(points):
    p = (i + 0.5) / points
    (p0, a), (p1, b) = next((k0, k1) for k0, k1 in zip(knots, knots[1:]) if p <= k1[0])
    out.append(a + (b - a) * (p - p0) / (p1 - p0))
  return out


def train_rows(cfg: Mapping, stats: Mapping) -> tuple[int, int]:
  """(steps, rows per step) of one training epoch: data/packing.py packs each batch's users
  (their last max_len + 1 training items) into rows of max_len + 1, as many rows as the
  epoch's fullest batch needs, rounded up to a multiple of 8. The fullest batch is the mean
  plus the expected maximum of `steps` normal deviations of a batch's tokens. Without
  lengths in `stats`, every user fills a row."""
  users, batch = int(stats.get("users") or 1), int(cfg.get("batch_size", 128))
  width = int(cfg["max_len"]) + 1
  steps = -(-users // batch)
  lengths = sequence_lengths(stats)
  if lengths is None:
    return steps, batch
  # leave-one-out: the last two items are validation and test targets
  tokens = [max(1.0, min(n - 2.0, width)) for n in lengths]
  mean = sum(tokens) / len(tokens)
  sd = math.sqrt(sum((t - mean) ** 2 for t in tokens) / len(tokens))
  fullest = batch * mean + math.sqrt(2.0 * math.log(max(steps, 2))) * math.sqrt(batch) * sd
  rows = -(-math.ceil(fullest / width) // MIN_ROWS) * MIN_ROWS
  return steps, int(min(batch, max(MIN_ROWS, rows)))


def eval_width(cfg: Mapping, stats: Mapping) -> float:
  """Mean input width of a validation user: engine/lanes.py eval_groups trims each user's
  input to the narrowest of 8, 16, 32, ... max_len that holds its history."""
  window = int(cfg["max_len"])
  lengths = sequence_lengths(stats)
  if lengths is None:
    return float(window)
  widths = sorted({w for w in EVAL_WIDTHS if w < window} | {window})
  seen = [min(max(1.0, n - 1.0), window) for n in lengths]
  return sum(next(w for w in widths if w >= s) for s in seen) / len(seen)


def lane_epoch_work(cfg: Mapping, stats: Mapping) -> dict[str, float]:
  """The FLOPs of one epoch of one lane with config `cfg` (a dict with the TrialConfig's
  fields) on data with `stats` (users, items, and for packing the length quantiles and
  avg_len of a data set's fingerprint), by part: `train` runs every position of the packed
  rows (train_rows) forward and backward with the loss at each, `optimizer` is AdamW over
  every parameter each step, `validate` encodes each user's trimmed input (eval_width; the
  last block only its last position) and scores and ranks the whole catalogue."""
  users, items = int(stats.get("users") or 1), int(stats.get("items") or 1)
  window, blocks, d = int(cfg["max_len"]), int(cfg.get("blocks", 2)), int(cfg["hidden"])
  steps, rows = train_rows(cfg, stats)
  encode = blocks * _block_flops_per_token(cfg, window)
  width = eval_width(cfg, stats)
  queries = ((blocks - 1) * width + 1) * _block_flops_per_token(cfg, int(round(width)))
  return {
      "train": steps
      * rows
      * window
      * (1 + BACKWARD)
      * (encode + _loss_flops_per_token(cfg, items)),
      "optimizer": steps * OPTIMIZER_FLOPS * _parameters(cfg, items),
      "validate": users * (queries + (2.0 * d + RANK_FLOPS) * (items + 1)),
  }


def lane_epoch_flops(cfg: Mapping, stats: Mapping) -> float:
  """Training plus validation work of one epoch of one lane (lane_epoch_work's sum)."""
  return sum(lane_epoch_work(cfg, stats).values())


def relative_cost(cfg: Mapping, reference: Mapping, stats: Mapping) -> float:
  """How many times `reference`'s time one lane-epoch of `cfg` is expected to take
  (work plus the fixed time of an epoch)."""
  fixed = OVERHEAD_PER_USER * int(stats.get("users") or 1)
  return (lane_epoch_flops(cfg, stats) + fixed) / (lane_epoch_flops(reference, stats) + fixed)


def eval_groups(cfg: Mapping, stats: Mapping) -> int:
  """How many validation input widths the data fills (one ranking loop each, compiled)."""
  window = int(cfg["max_len"])
  lengths = sequence_lengths(stats)
  widths = sorted({w for w in EVAL_WIDTHS if w < window} | {window})
  if lengths is None:
    return 1
  return len({next(w for w in widths if w >= min(max(1.0, n - 1.0), window)) for n in lengths})


def compile_units(cfg: Mapping, stats: Mapping) -> float:
  """How much compiling a structure's programs costs, relative to one block: the training
  epoch and the ranking program grow with the blocks, the ranking program also with its
  input widths (about a tenth of a block each, as measured on the 2-core CPU)."""
  return int(cfg.get("blocks", 2)) + COMPILE_PER_EVAL_WIDTH * eval_groups(cfg, stats)


def structure(cfg: Mapping) -> tuple:
  """The static fields of a config: lanes that share them share one compiled program."""
  return tuple((f, cfg.get(f)) for f in STATIC_FIELDS)


@dataclasses.dataclass(frozen=True)
class Price:
  """What a lane-epoch costs on a machine: seconds per TFLOP of work (lane_epoch_flops) plus a
  fixed time per lane-epoch, and (a probed price) seconds per compile unit of each structure
  a batch compiles. A study's measured price (fitted to its own buckets) has no compile
  term: its fixed time holds compilation spread over the epochs."""

  seconds_per_tflop: float
  seconds_per_lane_epoch: float
  seconds_per_compile_unit: float = 0.0

  def seconds(self, cfg: Mapping, stats: Mapping) -> float:
    """Expected seconds of one lane-epoch of `cfg`."""
    return (
        self.seconds_per_tflop * lane_epoch_flops(cfg, stats) / 1e12 + self.seconds_per_lane_epoch
    )

  def compile_seconds(self, cfg: Mapping, stats: Mapping) -> float:
    """Expected seconds of compiling `cfg`'s structure (once per structure and engine)."""
    return self.seconds_per_compile_unit * compile_units(cfg, stats)

  def lane_seconds(
      self, configs: Sequence[Mapping], stats: Mapping, epochs: float, compiled=()
  ) -> list[float]:
    """Expected seconds of each lane of a batch that trains `epochs` each: the first lane of
    a structure not in `compiled` (structure() keys) also pays its compilation."""
    seen, out = set(compiled), []
    for c in configs:
      key = structure(c)
      out.append(epochs * self.seconds(c, stats))
      if key not in seen:
        seen.add(key)
        out[-1] += self.compile_seconds(c, stats)
    return out

  def batch_seconds(
      self, configs: Sequence[Mapping], stats: Mapping, epochs: float, compiled=()
  ) -> float:
    """Expected training seconds of a batch of `configs` that train `epochs` each, with the
    compilation of each structure not in `compiled`."""
    return sum(self.lane_seconds(configs, stats, epochs, compiled))

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: Mapping) -> "Price":
    return cls(**{f.name: float(d[f.name]) for f in dataclasses.fields(cls) if f.name in d})


def expected_epochs_per_trial(measured: float | None, max_epochs: int) -> float:
  """Epochs a trial is expected to train, to price a proposal in seconds: the study's
  measured mean (BudgetState.epochs_per_trial: early-stopped and pruned lanes included)
  once it has one, else the epoch cap. The cap is the conservative choice before anything
  is measured (a lane that keeps improving trains to it, and early stopping usually ends a
  trial well before): it may leave minutes unspent, never overrun them."""
  return float(measured) if measured else float(max_epochs)


def measured_price(
    trials: Sequence[Mapping], stats: Mapping, prior: Price | None = None
) -> Price | None:
  """The study's price (None before a trial has trained). `trials` are dicts with config,
  epochs, bucket and bucket_seconds. Each bucket is a point (its work per lane-epoch, its
  seconds per lane-epoch), weighted by its lane-epochs; with structures whose work spans
  WORK_SPAN or more, a line through them splits work from fixed time on this machine (through
  the origin if the line's fixed time would be negative); otherwise the split is that of
  `prior` (this machine's probed price: search/probe.py) or else OVERHEAD_PER_USER's, scaled
  to the measured seconds. The measured seconds hold the buckets' compilation: the price
  has no compile term of its own."""
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
  if prior is not None and prior.seconds_per_tflop > 0:
    fixed_tflop = prior.seconds_per_lane_epoch / prior.seconds_per_tflop
  else:
    fixed_tflop = OVERHEAD_PER_USER * int(stats.get("users") or 1) / 1e12
  slope = my / (mx + fixed_tflop)
  return Price(slope, slope * fixed_tflop)
