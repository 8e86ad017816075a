"""The lanes engine: K trials of one static signature trained as one program.

Parameters and optimizer states are stacked on a leading lane axis and the
per-lane functions of `steps.py` are vmapped over it; one epoch is one jitted
call (`lax.scan` over the batches), compiled once per signature. All lanes
see the same batches; each has its own seed, dropout keys, learning rate,
weight decay and rates. Each lane early-stops on its own validation NDCG@10;
a stopped or diverged lane is frozen by masking its updates.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data.split import EvalSplit, LeaveOneOut
from vmle_jax.engine import steps
from vmle_jax.data.packing import pack_epoch, unpacked_epoch
from vmle_jax.eval.ranking import (
    metrics_from_ranks, sample_candidates, sampled_ranks, target_ranks)
from vmle_jax.models import build_model

SELECT_METRIC = "NDCG@10"


@dataclasses.dataclass
class LaneResult:
  """What one lane (one trial) did: status, epochs, best validation metrics, curves."""

  config: TrialConfig
  status: str = "running"  # finished (max epochs) | stopped (early) | diverged
  epochs: int = 0
  best_epoch: int = 0
  valid: dict = dataclasses.field(default_factory=dict)
  curve: list = dataclasses.field(default_factory=list)  # [{epoch, loss, NDCG@10, HR@10}]
  stopped_epoch: int | None = None
  error: str | None = None

  @property
  def best_value(self) -> float:
    return self.valid.get(SELECT_METRIC, float("nan"))


@dataclasses.dataclass
class BucketResult:
  """The lanes of one bucket and their best parameters (stacked, on device)."""

  signature: TrialConfig
  lanes: list[LaneResult]
  best_params: Any
  seconds: float
  steps_per_epoch: int
  compile_seconds: float


class _Programs:
  """Jitted init / epoch / ranking functions of one static signature."""

  def __init__(self, signature: TrialConfig, num_items: int, eval_batch: int, item_chunk: int):
    self.signature = signature
    model = build_model(signature, num_items)
    self.model = model
    step = functools.partial(steps.train_step, model, signature.loss, signature.num_negatives)
    lane_step = jax.vmap(step, in_axes=(0, None, 0))

    def init(hp, seeds):
      return jax.vmap(functools.partial(steps.init_lane, model, signature.max_len))(hp, seeds)

    def epoch(states, hp, alive, batches):
      k = alive.shape[0]

      def body(carry, batch):
        states, alive, loss_sum, count = carry
        new, loss, finite = lane_step(states, batch, hp)
        keep = alive & finite
        states = jax.tree_util.tree_map(
            lambda n, o: jnp.where(keep.reshape((k,) + (1,) * (n.ndim - 1)), n, o), new, states)
        loss_sum = loss_sum + jnp.where(keep, loss, 0.0)
        return (states, keep, loss_sum, count + keep), None

      init_carry = (states, alive, jnp.zeros(k), jnp.zeros(k, jnp.int32))
      (states, alive_out, loss_sum, count), _ = jax.lax.scan(body, init_carry, batches)
      return states, alive_out, loss_sum / jnp.maximum(count, 1)

    def ranks(params, groups):
      # groups: per input width, (inputs [C, Bu, W], targets [C, Bu], history, candidates).
      def chunk(xs):
        inp, tgt, hist, cand = xs
        q, table = jax.vmap(functools.partial(steps.last_queries, model), in_axes=(0, None))(
            params, inp)
        if cand is not None:
          return jax.vmap(sampled_ranks, in_axes=(0, 0, None, None))(q, table, tgt, cand)
        rank = functools.partial(target_ranks, item_chunk=item_chunk)
        return jax.vmap(rank, in_axes=(0, 0, None, None))(q, table, tgt, hist)

      outs = []
      for group in groups:
        out = jax.lax.map(chunk, group)  # [C, K, Bu]
        outs.append(jnp.transpose(out, (1, 0, 2)).reshape(out.shape[1], -1))
      return jnp.concatenate(outs, axis=1)

    def select(mask, new, old):
      return jax.tree_util.tree_map(
          lambda n, o: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, old)

    self.init = jax.jit(init)
    self.epoch = jax.jit(epoch, donate_argnums=(0,))
    self.ranks = jax.jit(ranks)
    self.select = jax.jit(select)


def eval_groups(split: EvalSplit, eval_batch: int, candidates: np.ndarray | None = None,
                use_history: bool = False):
  """Users sorted by input length, chunked, each chunk trimmed to a width bucket.

  Left padding changes no output (positions count from the most recent item
  and padded keys get exactly zero attention), so a chunk of short users is
  evaluated on a narrow input. Returns (groups, order): `groups` is a tuple
  of (inputs [C, Bu, W], targets [C, Bu], history | None, candidates | None)
  per width W, and `order[j]` is the user behind the j-th concatenated rank.
  """
  u, max_len = split.inputs.shape
  lengths = (split.inputs != 0).sum(axis=1)
  order = np.argsort(lengths, kind="stable")
  bu = min(eval_batch, u)
  n = -(-u // bu)
  order = np.concatenate([order, np.repeat(order[-1:], n * bu - u)])
  widths = sorted({w for w in (8, 16, 32, 64, 128, 256) if w < max_len} | {max_len})
  chunk_w = [next(w for w in widths if w >= max(1, lengths[order[c * bu:(c + 1) * bu]].max()))
             for c in range(n)]
  groups, flat = [], []
  for w in sorted(set(chunk_w)):
    cs = [c for c in range(n) if chunk_w[c] == w]
    idx = np.stack([order[c * bu:(c + 1) * bu] for c in cs])  # [C, Bu]
    flat.append(idx.reshape(-1))
    groups.append((
        jnp.asarray(split.inputs[idx][..., max_len - w:]),
        jnp.asarray(split.targets[idx]),
        jnp.asarray(split.history[idx]) if use_history else None,
        jnp.asarray(candidates[idx]) if candidates is not None else None))
  return tuple(groups), np.concatenate(flat)


def epoch_batches(num_rows: int, batch_size: int, data_seed: int, epoch: int) -> np.ndarray:
  """[steps, B] row indices: a fresh permutation per epoch, the last batch topped up."""
  rng = np.random.default_rng((data_seed, epoch))
  steps_ = math.ceil(num_rows / batch_size)
  perm = rng.permutation(num_rows)
  extra = steps_ * batch_size - num_rows
  if extra:
    perm = np.concatenate([perm, rng.permutation(num_rows)[:extra]])
  return perm.reshape(steps_, batch_size).astype(np.int32)


def _format_eta(seconds: float) -> str:
  seconds = max(0, int(seconds))
  if seconds >= 3600:
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
  if seconds >= 60:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds}s"


class Engine:
  """Trains buckets of same-signature trials on one data split and evaluates them.

  Holds the split's arrays on device (once) and one set of compiled programs
  per static signature, so later buckets of a signature never recompile.
  """

  def __init__(self, split: LeaveOneOut, schedule: Schedule = Schedule(),
               log: Callable[[str], None] | None = print):
    self.split = split
    self.schedule = schedule
    self.log = log or (lambda s: None)
    self._programs: dict[tuple, _Programs] = {}
    self._eval_cache: dict[tuple, tuple] = {}

  # ---------------------------------------------------------------- programs
  def programs(self, signature: TrialConfig) -> _Programs:
    key = (signature, self.split.num_items)
    if key not in self._programs:
      self._programs[key] = _Programs(signature, self.split.num_items, self.schedule.eval_batch,
                                      self.schedule.item_chunk)
    return self._programs[key]

  def _eval_arrays(self, which: str, protocol: str):
    key = (which, protocol, self.schedule.exclude_history)
    if key not in self._eval_cache:
      split = self.split.valid if which == "valid" else self.split.test
      candidates = None
      if protocol == "sampled-100":
        seen = np.concatenate([split.inputs, split.history], axis=1)
        candidates = sample_candidates(seen, split.targets, self.split.num_items, 99,
                                       seed=self.schedule.data_seed)
      use_history = self.schedule.exclude_history and protocol == "full"
      self._eval_cache[key] = eval_groups(split, self.schedule.eval_batch, candidates, use_history)
    return self._eval_cache[key]

  def lane_ranks(self, signature: TrialConfig, params, which: str = "valid",
                 protocol: str = "full") -> np.ndarray:
    """[K, U] 0-based ranks of every lane on the valid or test split."""
    if protocol not in ("full", "sampled-100"):
      raise ValueError(f"protocol={protocol!r}: not one of full, sampled-100")
    groups, order = self._eval_arrays(which, protocol)
    ranks = np.asarray(self.programs(signature).ranks(params, groups))
    out = np.empty((ranks.shape[0], len(self.split.valid.targets)), np.int32)
    out[:, order] = ranks  # padded repeats of the last user write the same value
    return out

  def evaluate(self, result: BucketResult, which: str = "test",
               protocol: str = "full") -> list[dict]:
    """Metrics of each lane's best parameters on `which` ("valid" or "test")."""
    ranks = self.lane_ranks(result.signature, result.best_params, which, protocol)
    return [metrics_from_ranks(r) for r in ranks]

  # ---------------------------------------------------------------- training
  def epoch_data(self, batch_size: int, epoch: int) -> dict:
    """The epoch's batches (packed unless `schedule.packed` is off) as device arrays."""
    idx = epoch_batches(len(self.split.train), batch_size, self.schedule.data_seed, epoch)
    packed = (pack_epoch if self.schedule.packed else unpacked_epoch)(self.split.train, idx)
    return {"tokens": jnp.asarray(packed.tokens), "segments": jnp.asarray(packed.segments),
            "positions": jnp.asarray(packed.positions)}

  def train(self, configs: Sequence[TrialConfig], label: str = "") -> BucketResult:
    """Trains `configs` (one static signature) as lanes until every lane has ended."""
    if not configs:
      raise ValueError("a bucket needs at least one trial")
    signature = configs[0].static_signature()
    for c in configs:
      if c.static_signature() != signature:
        raise ValueError("all trials of a bucket must share one static signature; "
                         f"{c.signature_key()} != {signature.signature_key()}")
    if signature.max_len != self.split.max_len:
      raise ValueError(f"max_len={signature.max_len} differs from the split's "
                       f"max_len={self.split.max_len}; build the split with that max_len")
    sched = self.schedule
    prog = self.programs(signature)
    k = len(configs)
    hp = {name: jnp.asarray([c.dynamic_values()[name] for c in configs], jnp.float32)
          for name in configs[0].dynamic_values()}
    seeds = jnp.asarray([c.seed for c in configs], jnp.uint32)
    lanes = [LaneResult(config=c) for c in configs]
    t0 = time.perf_counter()
    states = prog.init(hp, seeds)
    best_params = jax.tree_util.tree_map(jnp.copy, states.params)
    alive = np.ones(k, bool)
    best = np.full(k, -np.inf)
    since_best = np.zeros(k, int)
    steps_per_epoch = math.ceil(len(self.split.train) / signature.batch_size)
    compile_s, epoch_times = 0.0, []
    prefix = f"[{label}] " if label else ""
    for epoch in range(1, sched.max_epochs + 1):
      te = time.perf_counter()
      batches = self.epoch_data(signature.batch_size, epoch)
      states, alive_out, loss = prog.epoch(states, hp, jnp.asarray(alive), batches)
      alive_out, loss = np.asarray(alive_out), np.asarray(loss)
      for i in np.flatnonzero(alive & ~alive_out):
        lanes[i].status, lanes[i].stopped_epoch = "diverged", epoch
        lanes[i].error = f"non-finite loss or gradient in epoch {epoch}"
      alive = alive & alive_out
      evaluate_now = epoch % sched.eval_every == 0 or epoch == sched.max_epochs
      metrics = [None] * k
      if evaluate_now and alive.any():
        ranks = self.lane_ranks(signature, states.params, "valid")
        improved = np.zeros(k, bool)
        for i in np.flatnonzero(alive):
          metrics[i] = metrics_from_ranks(ranks[i])
          value = metrics[i][SELECT_METRIC]
          if value > best[i]:
            best[i], since_best[i], improved[i] = value, 0, True
            lanes[i].valid, lanes[i].best_epoch = metrics[i], epoch
          else:
            since_best[i] += sched.eval_every
        if improved.any():
          best_params = prog.select(jnp.asarray(improved), states.params, best_params)
        for i in np.flatnonzero(alive & (since_best >= sched.patience)):
          lanes[i].status, lanes[i].stopped_epoch = "stopped", epoch
          alive[i] = False
      for i in range(k):
        if lanes[i].status in ("running",) or lanes[i].stopped_epoch == epoch:
          lanes[i].epochs = epoch
          point = {"epoch": epoch, "loss": float(loss[i])}
          if metrics[i] is not None:
            point.update({m: metrics[i][m] for m in ("NDCG@10", "HR@10")})
          lanes[i].curve.append(point)
      seconds = time.perf_counter() - te
      if epoch == 1:
        compile_s = seconds
      epoch_times.append(seconds)
      typical = float(np.median(epoch_times[1:])) if len(epoch_times) > 1 else seconds
      eta = _format_eta(typical * (sched.max_epochs - epoch)) if alive.any() else "0s"
      live = np.flatnonzero(alive | np.array([l.stopped_epoch == epoch for l in lanes]))
      lead = int(np.argmax(np.where(np.isfinite(best), best, -1)))
      msg = (f"{prefix}epoch {epoch:3d}/{sched.max_epochs}  loss {np.mean(loss[live]) if len(live) else float('nan'):.4f}")
      if any(m is not None for m in metrics):
        shown = [m for m in metrics if m is not None]
        if k == 1:
          msg += f"  val NDCG@10 {shown[0]['NDCG@10']:.4f} HR@10 {shown[0]['HR@10']:.4f}"
        else:
          msg += f"  val NDCG@10 max {max(m['NDCG@10'] for m in shown):.4f}"
      msg += f"  best {best[lead]:.4f} @ epoch {lanes[lead].best_epoch}"
      if k > 1:
        msg += f"  lanes alive {int(alive.sum())}/{k}"
      msg += f"  {seconds:.1f} s/epoch  ETA ≤{eta}"
      self.log(msg)
      if not alive.any():
        break
    for lane in lanes:
      if lane.status == "running":
        lane.status = "finished"
    elapsed = time.perf_counter() - t0
    return BucketResult(signature=signature, lanes=lanes, best_params=best_params,
                        seconds=elapsed, steps_per_epoch=steps_per_epoch,
                        compile_seconds=compile_s)
