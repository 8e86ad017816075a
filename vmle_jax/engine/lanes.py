"""The lanes engine: K trials of one static signature trained as one program.

Parameters and optimizer states are stacked on a leading lane axis and the
per-lane functions of `steps.py` are vmapped over it; one epoch is one jitted
call (`lax.scan` over the batches), compiled once per signature. All lanes
see the same batches; each has its own seed, dropout keys, learning rate,
weight decay and rates. Each lane early-stops on its own validation NDCG@10
(or is pruned by a study-level rule); a stopped or diverged lane is frozen,
and once at most half of a bucket's lanes are alive the bucket is compacted
to the survivors, so stopped lanes stop costing compute.

On a single CPU device the lanes of a bucket train one after another by
default (`Schedule.lane_execution`): the two cores are busy with one lane, and
vmapped lanes there measured slower per trial (their state spills out of the
caches); the results are the same either way.
"""

from __future__ import annotations

import collections
import gc
import dataclasses
import functools
import math
import os
import shutil
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data.dataset import SequenceDataset
from vmle_jax.data.packing import pack_epoch, unpacked_epoch
from vmle_jax.data.split import EvalSplit, LeaveOneOut, leave_one_out
from vmle_jax.engine import steps
from vmle_jax.engine.capacity import check_fits
from vmle_jax.engine.checkpoint import BucketCheckpoint
from vmle_jax.eval.ranking import (
    metrics_from_ranks,
    sample_candidates,
    sampled_ranks,
    target_ranks,
)
from vmle_jax.models import build_model

SELECT_METRIC = "NDCG@10"
LANES = "lanes"  # the mesh axis the lane dimension is sharded over


@dataclasses.dataclass
class LaneResult:
  """What one lane (one trial) did: status, epochs, best validation metrics, curves."""

  config: TrialConfig
  status: str = "running"  # finished (max epochs) | stopped (patience) | pruned | diverged
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
  lane_seconds: list[float] | None = None  # lanes in series: each lane's own (None: vmapped)


@dataclasses.dataclass
class _BucketRun:
  """A bucket in training: device state and the host-side bookkeeping of its lanes."""

  signature: TrialConfig
  prog: "_Programs"
  label: str
  k: int  # lanes reported (the rest of the slots are padding)
  t0: float
  states: Any
  hp: Any
  best_params: Any
  lanes: list
  slots: np.ndarray
  alive: np.ndarray
  best: np.ndarray
  since_best: np.ndarray
  ckpt: BucketCheckpoint | None = None
  with_average: bool = True  # some lane keeps a parameter average (param_ema > 0)
  first_epoch: int = 1
  queued_lanes: int = 0  # lanes of the bucket waiting for this one (lanes in series)
  compile_seconds: float = 0.0
  epoch_times: list = dataclasses.field(default_factory=list)

  @property
  def evaluated(self):
    """What validation, selection and test see: the average where lanes keep one."""
    return self.states.average if self.with_average else self.states.params


def keeps_average(configs: Sequence[TrialConfig]) -> bool:
  """Whether any lane keeps a moving average of its parameters (else the step skips it)."""
  return any(c.param_ema > 0 for c in configs)


class _Programs:
  """Jitted init / epoch / ranking functions of one static signature."""

  def __init__(
      self,
      signature: TrialConfig,
      num_items: int,
      item_chunk: int,
      mesh: Mesh,
      compute_dtype: str = "float32",
      score_block: int = 1 << 22,
  ):
    self.signature = signature
    model = build_model(signature, num_items, compute_dtype)
    self.model = model

    def lane_step(states, batch, hp, with_average=True):
      step = functools.partial(
          steps.train_step,
          model,
          signature.loss,
          signature.num_negatives,
          with_average=with_average,
      )
      return jax.vmap(step, in_axes=(0, None, 0))(states, batch, hp)

    def init(hp, seeds):
      return jax.vmap(functools.partial(steps.init_lane, model, signature.max_len))(hp, seeds)

    def epoch(states, hp, alive, batches, with_average=True):
      k = alive.shape[0]

      def frozen(new, old, keep):  # lanes that did not keep the step keep their state
        return jax.tree.map(
            lambda n, o: jnp.where(keep.reshape((k,) + (1,) * (n.ndim - 1)), n, o), new, old
        )

      def body(carry, batch):
        states, alive, loss_sum, count = carry
        new, loss, finite = lane_step(states, batch, hp, with_average)
        keep = alive & finite
        # Usually every lane keeps its step: then no pass over the whole state.
        states = jax.lax.cond(jnp.all(keep), lambda: new, lambda: frozen(new, states, keep))
        loss_sum = loss_sum + jnp.where(keep, loss, 0.0)
        return (states, keep, loss_sum, count + keep), None

      init_carry = (states, alive, jnp.zeros(k), jnp.zeros(k, jnp.int32))
      (states, alive_out, loss_sum, count), _ = jax.lax.scan(body, init_carry, batches)
      return states, alive_out, loss_sum / jnp.maximum(count, 1)

    def ranks(params, groups):
      # groups: per input width, (inputs [C, Bu, W], targets [C, Bu], history, candidates).
      def chunk(xs):
        return rank_chunk(params, xs)

      outs = []
      for group in groups:
        out = jax.lax.map(chunk, group)  # [C, K, Bu]
        outs.append(jnp.transpose(out, (1, 0, 2)).reshape(out.shape[1], -1))
      return jnp.concatenate(outs, axis=1)

    def rank_chunk(params, xs):
      inp, tgt, hist, cand, times = xs
      # Ranks do not depend on the (positive) temperature: evaluate at 1.
      query = functools.partial(steps.last_queries, model, temperature=1.0, times=times)
      q, table = jax.vmap(query, in_axes=(0, None))(params, inp)
      if cand is not None:
        return jax.vmap(sampled_ranks, in_axes=(0, 0, None, None))(q, table, tgt, cand)
      # One pass over the whole catalogue when the chunk's scores fit a block (the
      # engine sizes user chunks so that they do), else two passes over item chunks.
      lanes_here = q.shape[0] // mesh.shape[LANES]
      one_pass = lanes_here * q.shape[1] * table.shape[1] <= score_block
      rank = functools.partial(target_ranks, item_chunk=table.shape[1] if one_pass else item_chunk)
      return jax.vmap(rank, in_axes=(0, 0, None, None))(q, table, tgt, hist)

    def keep_best(best, new, lane_ids, mask):
      # best: [K_full, ...] per lane; new: [K_slots, ...] per slot; slot j holds lane
      # lane_ids[j] (out of range for padding slots, whose writes are dropped).
      ids = jnp.where(mask, lane_ids, best_size(best))
      return jax.tree.map(lambda b, n: b.at[ids].set(n, mode="drop"), best, new)

    def best_size(tree):
      return jax.tree.leaves(tree)[0].shape[0]

    def gather(tree, idx):
      return jax.tree.map(lambda x: x[idx], tree)

    # Per-lane state stays sharded over the `lanes` axis; what the host reads
    # (alive flags, losses, ranks, one lane's parameters) comes back replicated,
    # so every process of a multi-host run can read it.
    lanes = NamedSharding(mesh, PartitionSpec(LANES))
    replicated = NamedSharding(mesh, PartitionSpec())
    # Unjitted pieces, for cost analysis (bench/roofline.py): one step, one evaluation chunk.
    self.lane_step, self.rank_chunk = lane_step, rank_chunk
    self.init = jax.jit(init, out_shardings=lanes)
    self.copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree), out_shardings=lanes)
    self.epoch = jax.jit(
        epoch,
        donate_argnums=(0,),
        static_argnames=("with_average",),
        out_shardings=(lanes, replicated, replicated),
    )
    self.ranks = jax.jit(ranks, out_shardings=replicated)
    self.keep_best = jax.jit(keep_best, donate_argnums=(0,), out_shardings=lanes)
    self.gather = jax.jit(gather, out_shardings=lanes)
    self.take = jax.jit(
        lambda tree, i: jax.tree.map(lambda x: x[i], tree), out_shardings=replicated
    )


# Attention scores of one evaluation chunk (lanes per device x users x heads x W x W
# floats) are kept near this many elements: a chunk far larger spills out of the
# caches and runs several times slower per user (943 users of width 200 with 4
# heads and 4 lanes in one chunk ran at a quarter of the speed of 64-user chunks).
ATTENTION_ELEMENTS = 1 << 25


def chunk_users(
    width: int, heads: int, lanes_per_device: int, cap: int, score_users: int | None = None
) -> int:
  """Users per evaluation chunk of inputs `width` wide: at most `cap` (and `score_users`,
  the most whose scores over the whole catalogue fit one block), and few enough that the
  chunk's attention scores stay near ATTENTION_ELEMENTS."""
  per_user = max(1, lanes_per_device) * max(1, heads) * width * width
  users = min(cap, ATTENTION_ELEMENTS // per_user, score_users or cap)
  return int(max(8, users))


def eval_groups(
    split: EvalSplit,
    users_per_chunk: int | Callable[[int], int],
    candidates: np.ndarray | None = None,
    use_history: bool = False,
):
  """Users grouped by input width bucket and chunked, each chunk trimmed to its width.

  Left padding changes no output (positions count from the most recent item
  and padded keys get exactly zero attention), so short users are evaluated
  on narrow inputs. `users_per_chunk` is a number or a function of the width
  (wide chunks hold fewer users). Returns (groups, order): `groups` is a
  tuple of (inputs [C, Bu, W], targets [C, Bu], history | None, candidates |
  None, times | None) per width W, and `order[j]` is the user behind the j-th
  concatenated rank (a group's last chunk is topped up with repeats).
  """
  u, max_len = split.inputs.shape
  lengths = (split.inputs != 0).sum(axis=1)
  widths = np.asarray(sorted({w for w in (8, 16, 32, 64, 128, 256) if w < max_len} | {max_len}))
  user_width = widths[np.searchsorted(widths, np.maximum(lengths, 1))]
  groups, flat = [], []
  for w in np.unique(user_width):
    w = int(w)
    members = np.flatnonzero(user_width == w)
    cap = users_per_chunk(w) if callable(users_per_chunk) else users_per_chunk
    bu = max(1, min(int(cap), len(members)))
    n = -(-len(members) // bu)
    members = np.concatenate([members, np.repeat(members[-1:], n * bu - len(members))])
    idx = members.reshape(n, bu)  # [C, Bu]
    flat.append(members)
    groups.append(
        (
            jnp.asarray(split.inputs[idx][..., max_len - w :]),
            jnp.asarray(split.targets[idx]),
            jnp.asarray(split.history[idx]) if use_history else None,
            jnp.asarray(candidates[idx]) if candidates is not None else None,
            jnp.asarray(split.input_times[idx][..., max_len - w :])
            if split.input_times is not None
            else None,
        )
    )
  return tuple(groups), np.concatenate(flat)


def epoch_batches(num_rows: int, batch_size: int, data_seed: int, epoch: int) -> np.ndarray:
  """[steps, B] row indices: a fresh permutation per epoch, the last batch topped up."""
  rng = np.random.default_rng((data_seed, epoch))
  steps_ = math.ceil(num_rows / batch_size)
  perm = rng.permutation(num_rows)
  while len(perm) < steps_ * batch_size:  # top up (several times when users < batch)
    perm = np.concatenate([perm, rng.permutation(num_rows)])
  return perm[: steps_ * batch_size].reshape(steps_, batch_size).astype(np.int32)


def format_eta(seconds: float) -> str:
  """Seconds as 42s, 3m05s or 1h07m (progress lines of the engine and the study loop)."""
  seconds = max(0, int(seconds))
  if seconds >= 3600:
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
  if seconds >= 60:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds}s"


class Engine:
  """Trains buckets of same-signature trials on one data set and evaluates them.

  Holds the leave-one-out split per `max_len` (built once), its evaluation
  arrays on device, and one set of compiled programs per static signature (the
  `max_programs` most recently used: a sweep over many structures would
  otherwise keep every compiled program), so later buckets of a recent
  signature never recompile. With several devices the lane
  axis is sharded over a mesh axis named `lanes` (data replicated); a bucket
  whose size does not divide the device count is padded with inert lanes
  that never train and are never reported.
  """

  def __init__(
      self,
      data: SequenceDataset | LeaveOneOut,
      schedule: Schedule = Schedule(),
      log: Callable[[str], None] | None = print,
      mesh: Mesh | None = None,
      profile_dir: str | None = None,
      max_programs: int = 8,
  ):
    self.data = data
    self.profile_dir = profile_dir
    self.schedule = schedule
    self.log = log or (lambda s: None)
    self._splits: dict[int, LeaveOneOut] = {}
    if isinstance(data, LeaveOneOut):
      self._splits[data.max_len] = data
    self.num_items = data.num_items
    self.mesh = mesh if mesh is not None else lane_mesh()
    # Compiled programs, least recently used first: a long sweep meets many static
    # signatures, and each compiled program holds tens of MB.
    self._programs: collections.OrderedDict[tuple, _Programs] = collections.OrderedDict()
    self.max_programs = max(1, int(max_programs))
    self._eval_cache: dict[tuple, tuple] = {}
    if schedule.lane_execution == "serial" and self.num_devices > 1:
      raise ValueError(
          f"lane_execution=serial trains one lane at a time on one device; this mesh has "
          f"{self.num_devices} devices on its lanes axis (use vmap or auto)"
      )
    if self.in_series and schedule.lane_execution == "auto":
      self.log(
          "lanes: a bucket's lanes train one after another on this single CPU device, "
          "where vmapped lanes ran slower (same results; --lane_execution=vmap to vmap them)"
      )

  @property
  def num_devices(self) -> int:
    """Devices along the lanes axis (a `data` axis, if any, splits each lane's batch)."""
    return self.mesh.shape[LANES]

  def split(self, max_len: int) -> LeaveOneOut:
    """The leave-one-out split for `max_len` (built on first use)."""
    if max_len not in self._splits:
      if isinstance(self.data, LeaveOneOut):
        raise ValueError(
            f"max_len={max_len}: this engine holds only the split of "
            f"max_len={self.data.max_len}; give it the data set instead"
        )
      self._splits[max_len] = leave_one_out(self.data, max_len)
    return self._splits[max_len]

  # ---------------------------------------------------------------- placement
  def shard_lanes(self, tree):
    """Per-lane arrays (leading axis: lanes, a multiple of the device count) on the mesh."""
    sharding = NamedSharding(self.mesh, PartitionSpec(LANES))
    return jax.device_put(tree, sharding)

  def _replicate(self, tree):
    return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

  def _shard_batches(self, tree):
    """[steps, rows, width] batches: rows split over the `data` axis when the mesh has one."""
    if "data" not in self.mesh.axis_names or self.mesh.shape["data"] == 1:
      return self._replicate(tree)
    return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec(None, "data")))

  def padded_lanes(self, k: int) -> int:
    """K rounded up to a multiple of the device count."""
    return -(-k // self.num_devices) * self.num_devices

  @property
  def in_series(self) -> bool:
    """Whether a bucket's lanes train one after another (each as a one-lane bucket):
    `schedule.lane_execution`, where auto means so on a single CPU device."""
    mode = self.schedule.lane_execution
    if mode == "auto":
      return self.num_devices == 1 and self.mesh.devices.flat[0].platform == "cpu"
    return mode == "serial"  # one device (checked when the engine is made)

  # ---------------------------------------------------------------- programs
  def programs(self, signature: TrialConfig) -> _Programs:
    key = (signature, self.num_items)
    if key in self._programs:
      self._programs.move_to_end(key)
    else:
      evicted = False
      while len(self._programs) >= self.max_programs:
        self._programs.popitem(last=False)
        evicted = True
      if evicted:  # the jitted closures of a program refer to one another: only the
        gc.collect()  # cycle collector frees their compiled executables, so run it now
      self._programs[key] = _Programs(
          signature,
          self.num_items,
          self.schedule.item_chunk,
          self.mesh,
          self.schedule.compute_dtype,
          score_block=self.score_block,
      )
    return self._programs[key]

  def forget_programs(self) -> None:
    """Drops every compiled program, so the next bucket of any signature compiles anew: a
    comparison gives each study the compilations it would pay run alone, instead of
    charging them all to the first strategy (search/comparison.py)."""
    self._programs.clear()
    gc.collect()  # the jitted closures refer to one another (see `programs`)

  @property
  def score_block(self) -> int:
    """Scores one device holds at once in evaluation (eval_batch x item_chunk floats)."""
    return self.schedule.eval_batch * self.schedule.item_chunk

  def eval_arrays(
      self, signature: TrialConfig, which: str, protocol: str, lanes: int, exclude_history: bool
  ):
    """(groups, order, users): the valid or test split's inputs chunked per width bucket,
    on device (see `eval_groups`), built once per signature shape and lane count."""
    # Users per chunk: the score buffer is lanes x users x item_chunk floats, and the
    # attention buffer lanes x users x heads x width^2 (see chunk_users).
    per_device = max(1, lanes // self.num_devices)
    cap = max(64, (self.schedule.eval_batch * 4) // max(4, per_device))
    # Scoring the whole catalogue in one block (one matmul, every score once) is twice
    # as fast as two passes over item chunks while the block stays in the caches: a
    # chunk holds as many users as fit `score_block`, when that is at least 16.
    one_pass = self.score_block // (per_device * (self.num_items + 1))
    score_users = one_pass if one_pass >= 16 else None
    max_len, heads = signature.max_len, signature.heads
    key = (max_len, which, protocol, exclude_history, cap, heads, per_device)
    if key not in self._eval_cache:
      split = self.split(max_len)
      ev = split.valid if which == "valid" else split.test
      candidates = None
      if protocol == "sampled-100":
        seen = np.concatenate([ev.inputs, ev.history], axis=1)
        candidates = sample_candidates(
            seen, ev.targets, self.num_items, 99, seed=self.schedule.data_seed
        )
      use_history = exclude_history and protocol == "full"
      groups, order = eval_groups(
          ev,
          functools.partial(
              chunk_users,
              heads=heads,
              lanes_per_device=per_device,
              cap=cap,
              score_users=score_users,
          ),
          candidates,
          use_history,
      )
      self._eval_cache[key] = (self._replicate(groups), order, ev.num_users)
    return self._eval_cache[key]

  def lane_ranks(
      self,
      signature: TrialConfig,
      params,
      which: str = "valid",
      protocol: str = "full",
      exclude_history: bool | None = None,
  ) -> np.ndarray:
    """[K, U] 0-based ranks of every lane (padding lanes included) on valid or test.

    `exclude_history` defaults to the schedule's setting.
    """
    if protocol not in ("full", "sampled-100"):
      raise ValueError(f"protocol={protocol!r}: not one of full, sampled-100")
    if exclude_history is None:
      exclude_history = self.schedule.exclude_history
    lanes = jax.tree.leaves(params)[0].shape[0]
    groups, order, num_users = self.eval_arrays(signature, which, protocol, lanes, exclude_history)
    ranks = np.asarray(self.programs(signature).ranks(params, groups))
    out = np.empty((ranks.shape[0], num_users), np.int32)
    out[:, order] = ranks  # padded repeats of the last user write the same value
    return out

  def evaluate(
      self,
      result: BucketResult,
      which: str = "test",
      protocol: str = "full",
      exclude_history: bool | None = None,
  ) -> list[dict]:
    """Metrics of each reported lane's best parameters on `which` ("valid" or "test")."""
    if self.in_series and len(result.lanes) > 1:  # one lane at a time, as it trained
      return [
          self.evaluate(
              dataclasses.replace(
                  result,
                  lanes=[lane],
                  best_params=jax.tree.map(lambda x: x[i : i + 1], result.best_params),
              ),
              which,
              protocol,
              exclude_history,
          )[0]
          for i, lane in enumerate(result.lanes)
      ]
    ranks = self.lane_ranks(result.signature, result.best_params, which, protocol, exclude_history)
    return [metrics_from_ranks(r) for r in ranks[: len(result.lanes)]]

  # ---------------------------------------------------------------- training
  def epoch_data(self, max_len: int, batch_size: int, epoch: int) -> dict:
    """The epoch's batches (packed unless `schedule.packed` is off), replicated on device."""
    split = self.split(max_len)
    idx = epoch_batches(len(split.train), batch_size, self.schedule.data_seed, epoch)
    layout = pack_epoch if self.schedule.packed else unpacked_epoch
    return self._shard_batches(layout(split.train, idx, split.train_times).arrays())

  def init_lanes(self, configs: Sequence[TrialConfig]):
    """Stacked, lane-sharded initial states and hyperparameters (padded to the mesh)."""
    k = self.padded_lanes(len(configs))
    padded = list(configs) + [configs[0]] * (k - len(configs))
    hp = {
        name: np.asarray([c.dynamic_values()[name] for c in padded], np.float32)
        for name in configs[0].dynamic_values()
    }
    seeds = np.asarray([c.seed for c in padded], np.uint32)
    hp, seeds = self.shard_lanes((hp, seeds))
    return self.programs(configs[0].static_signature()).init(hp, seeds), hp

  def train(
      self,
      configs: Sequence[TrialConfig],
      label: str = "",
      checkpoint_dir: str | None = None,
      prune: Callable[[int, np.ndarray, np.ndarray], np.ndarray] | None = None,
  ) -> BucketResult:
    """Trains `configs` (one static signature) as lanes until every lane has ended.

    `prune(epoch, best, alive)`, called after each validation with every lane's
    best validation NDCG@10 so far, returns the lanes to stop now (status
    `pruned`; a study-level early-stopping rule, see search/pruning.py). When
    at most half of the slots hold live lanes, the bucket is compacted to them.

    With `checkpoint_dir` and `schedule.checkpoint_every`, the bucket's lane
    states are saved with orbax every that many epochs, and a bucket started
    again with the same configs continues from its last checkpoint (the
    batches of an epoch depend only on the data seed and the epoch, so the
    continuation is the run that was interrupted). The checkpoint is removed
    when the bucket ends.
    """
    if len(configs) > 1 and self.in_series:
      return self._train_in_series(configs, label, checkpoint_dir, prune)
    return self._train_bucket(configs, label, checkpoint_dir, prune)

  def _train_in_series(self, configs, label, checkpoint_dir, prune) -> BucketResult:
    """The bucket's lanes one after another, each as a one-lane bucket, as one result.

    Each lane checkpoints in its own folder, kept after it ends until the whole
    bucket has, so a bucket started again skips the lanes that had ended."""
    parts, k = [], len(configs)
    folders = [
        os.path.join(checkpoint_dir, f"lane-{i}") if checkpoint_dir else None for i in range(k)
    ]
    for i, (cfg, folder) in enumerate(zip(configs, folders)):
      tag = f"{label} lane {i + 1}/{k}" if label else f"lane {i + 1}/{k}"
      parts.append(
          self._train_bucket([cfg], tag, folder, prune, keep_checkpoint=True, queued=k - 1 - i)
      )
    if checkpoint_dir and jax.process_index() == 0:
      shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return BucketResult(
        signature=parts[0].signature,
        lanes=[lane for part in parts for lane in part.lanes],
        best_params=jax.tree.map(
            lambda *xs: jnp.concatenate(xs), *[part.best_params for part in parts]
        ),
        seconds=sum(part.seconds for part in parts),
        steps_per_epoch=parts[0].steps_per_epoch,
        compile_seconds=sum(part.compile_seconds for part in parts),
        lane_seconds=[part.seconds for part in parts],
    )

  def _train_bucket(
      self, configs, label, checkpoint_dir, prune, keep_checkpoint: bool = False, queued: int = 0
  ) -> BucketResult:
    """`train` with the lanes vmapped together; with `keep_checkpoint` the bucket's final
    state is saved (when it checkpoints at all) instead of its checkpoint removed; `queued`
    lanes wait after this one (they count in the ETA)."""
    run = self._start_bucket(configs, label, checkpoint_dir)
    run.queued_lanes = queued
    sched = self.schedule
    last = run.first_epoch - 1
    for epoch in range(run.first_epoch, sched.max_epochs + 1):
      if not run.alive.any():
        break
      last = epoch
      te = time.perf_counter()
      loss = self._train_epoch(run, epoch)
      metrics = [None] * run.k
      if (epoch % sched.eval_every == 0 or epoch == sched.max_epochs) and run.alive.any():
        metrics = self._validate(run, epoch, prune)
      self._record_epoch(run, epoch, loss, metrics, time.perf_counter() - te)
      if epoch < sched.max_epochs:
        self._maybe_compact(run)
      if (
          run.ckpt is not None
          and sched.checkpoint_every
          and epoch % sched.checkpoint_every == 0
          and run.alive.any()
      ):
        self._checkpoint(run, epoch)
    for lane in run.lanes:
      if lane.status == "running":
        lane.status = "finished"
    if run.ckpt is not None and keep_checkpoint:
      if sched.checkpoint_every and last >= run.first_epoch:  # a restart skips this bucket
        run.alive[:] = False
        self._checkpoint(run, last)
    elif run.ckpt is not None:
      run.ckpt.remove()
    split = self.split(run.signature.max_len)
    return BucketResult(
        signature=run.signature,
        lanes=run.lanes,
        best_params=run.best_params,
        seconds=time.perf_counter() - run.t0,
        steps_per_epoch=math.ceil(len(split.train) / run.signature.batch_size),
        compile_seconds=run.compile_seconds,
    )

  # -- the phases of a bucket
  @staticmethod
  def _checkpoint(run: "_BucketRun", epoch: int) -> None:
    run.ckpt.save(
        epoch,
        run.states,
        run.best_params,
        run.alive,
        run.best,
        run.since_best,
        run.lanes,
        run.slots,
    )

  def _start_bucket(self, configs, label, checkpoint_dir) -> "_BucketRun":
    """Initial (or checkpointed) lane states and the host-side bookkeeping of a bucket."""
    if not configs:
      raise ValueError("a bucket needs at least one trial")
    signature = configs[0].static_signature()
    for c in configs:
      if c.static_signature() != signature:
        raise ValueError(
            "all trials of a bucket must share one static signature; "
            f"{c.signature_key()} != {signature.signature_key()}"
        )
    k, k_pad = len(configs), self.padded_lanes(len(configs))
    check_fits(signature, self.num_items, -(-k_pad // self.num_devices), self.mesh.devices.flat[0])
    prog = self.programs(signature)
    split = self.split(signature.max_len)
    if signature.backbone == "hstu" and signature.time_bias and split.train_times is None:
      self.log("HSTU time bias off: the data set has no timestamps (relative-position bias only)")
    t0 = time.perf_counter()
    states, hp = self.init_lanes(configs)
    run = _BucketRun(
        signature=signature,
        prog=prog,
        label=label,
        k=k,
        t0=t0,
        states=states,
        hp=hp,
        best_params=prog.copy(states.params),  # per lane, never compacted
        lanes=[LaneResult(config=c) for c in configs],
        # slots[j]: the lane trained in slot j of the (possibly compacted) state; -1: padding.
        slots=np.where(np.arange(k_pad) < k, np.arange(k_pad), -1),
        alive=np.arange(k_pad) < k,  # per lane; padding lanes never train
        best=np.full(k_pad, -np.inf),
        since_best=np.zeros(k_pad, int),
        ckpt=BucketCheckpoint(checkpoint_dir, configs) if checkpoint_dir else None,
        with_average=keeps_average(configs),
    )
    if run.ckpt is not None and run.ckpt.exists():
      saved_slots = run.ckpt.slots()
      if saved_slots is not None and len(saved_slots) != len(run.slots):
        run.states, run.hp = self._compact(prog, run.states, run.hp, run.slots, saved_slots)
        run.slots = saved_slots
      run.states, run.best_params, host = run.ckpt.restore(run.states, run.best_params)
      run.alive, run.best, run.since_best = host["alive"], host["best"], host["since_best"]
      for lane, saved in zip(run.lanes, host["lanes"]):
        for field, value in saved.items():
          setattr(lane, field, value)
      run.first_epoch = host["epoch"] + 1
      self.log(f"[{label}] resuming the bucket from its checkpoint after epoch {host['epoch']}")
    return run

  def _train_epoch(self, run: "_BucketRun", epoch: int) -> np.ndarray:
    """One epoch of every live slot; lanes whose loss or gradient went non-finite are frozen
    as diverged. Returns the mean loss per lane (NaN for lanes that did not train)."""
    live = run.slots >= 0
    slot_alive = live & run.alive[np.maximum(run.slots, 0)]
    batches = self.epoch_data(run.signature.max_len, run.signature.batch_size, epoch)
    profiling = self.profile_dir and epoch == run.first_epoch + 1
    if profiling:
      jax.profiler.start_trace(self.profile_dir)
    run.states, alive_out, slot_loss = run.prog.epoch(
        run.states, run.hp, self.shard_lanes(slot_alive), batches, with_average=run.with_average
    )
    alive_out, slot_loss = np.asarray(alive_out), np.asarray(slot_loss)
    if profiling:
      jax.profiler.stop_trace()
      self.log(f"profile of epoch {epoch} written to {self.profile_dir}")
    loss = np.full(len(run.alive), np.nan)  # per lane (slots may be compacted)
    loss[run.slots[live]] = slot_loss[live]
    for j in np.flatnonzero(slot_alive & ~alive_out):
      i = run.slots[j]
      lane = run.lanes[i]
      lane.status, lane.stopped_epoch = "diverged", epoch
      lane.error = f"non-finite loss or gradient in epoch {epoch}"
      run.alive[i] = False
    return loss

  def _validate(self, run: "_BucketRun", epoch: int, prune) -> list:
    """Validation metrics of every live lane; keeps each lane's best parameters, stops lanes
    out of patience, and asks the study's rule which lanes to prune."""
    sched, k = self.schedule, run.k
    metrics = [None] * k
    slot_ranks = self.lane_ranks(run.signature, run.evaluated, "valid")
    improved = np.zeros(len(run.slots), bool)
    for j in np.flatnonzero(run.slots >= 0):
      i = run.slots[j]
      if not run.alive[i]:
        continue
      metrics[i] = metrics_from_ranks(slot_ranks[j])
      value = metrics[i][SELECT_METRIC]
      if value > run.best[i]:
        run.best[i], run.since_best[i], improved[j] = value, 0, True
        run.lanes[i].valid, run.lanes[i].best_epoch = metrics[i], epoch
      else:
        run.since_best[i] += sched.eval_every
    if improved.any():
      run.best_params = run.prog.keep_best(
          run.best_params,
          run.evaluated,
          self.shard_lanes(np.maximum(run.slots, 0).astype(np.int32)),
          self.shard_lanes(improved),
      )
    for i in np.flatnonzero(run.alive & (run.since_best >= sched.patience)):
      run.lanes[i].status, run.lanes[i].stopped_epoch = "stopped", epoch
      run.alive[i] = False
    if prune is not None and run.alive[:k].any() and epoch < sched.max_epochs:
      cut = np.asarray(prune(epoch, run.best[:k].copy(), run.alive[:k].copy()), bool)
      for i in np.flatnonzero(cut & run.alive[:k]):
        lane = run.lanes[i]
        lane.status, lane.stopped_epoch = "pruned", epoch
        lane.error = (
            f"pruned after epoch {epoch}: best validation NDCG@10 "
            f"{run.best[i]:.4f} cannot catch up with the study's finished trials"
        )
        run.alive[i] = False
    return metrics

  def _record_epoch(self, run: "_BucketRun", epoch: int, loss, metrics, seconds: float) -> None:
    """Each live lane's curve point, and the epoch's progress line."""
    for i, lane in enumerate(run.lanes):
      if lane.status == "running" or lane.stopped_epoch == epoch:
        lane.epochs = epoch
        point = {"epoch": epoch, "loss": float(loss[i])}
        if metrics[i] is not None:
          point.update({m: metrics[i][m] for m in ("NDCG@10", "HR@10")})
        lane.curve.append(point)
    if epoch == run.first_epoch:
      run.compile_seconds = seconds
    run.epoch_times.append(seconds)
    self.log(
        _progress_line(
            run.label,
            epoch,
            self.schedule.max_epochs,
            run.lanes,
            loss,
            metrics,
            run.best,
            run.alive[: run.k],
            run.epoch_times,
            len(run.slots),
            run.queued_lanes,
        )
    )

  def _maybe_compact(self, run: "_BucketRun") -> None:
    """Once the live lanes fit in half the slots, train only them."""
    n_alive = int(run.alive.sum())
    if n_alive and self.padded_lanes(n_alive) <= len(run.slots) // 2:
      keep = [int(s) for s in run.slots if s >= 0 and run.alive[s]]
      target = np.asarray(keep + [-1] * (self.padded_lanes(n_alive) - n_alive))
      run.states, run.hp = self._compact(run.prog, run.states, run.hp, run.slots, target)
      run.slots = target

  def _compact(self, prog: _Programs, states, hp, slots: np.ndarray, target: np.ndarray):
    """States and rates of the slots holding `target`'s lanes (padding: a copy of the first)."""
    where = {int(lane): j for j, lane in enumerate(slots) if lane >= 0}
    first = where[int(next(l for l in target if l >= 0))]
    idx = np.asarray([where[int(l)] if l >= 0 else first for l in target], np.int32)
    idx = self.shard_lanes(idx)
    return prog.gather(states, idx), prog.gather(hp, idx)

  def lane_params(self, result: BucketResult, lane: int):
    """One lane's best parameters as host numpy arrays (works on every process)."""
    prog = self.programs(result.signature)
    return jax.tree.map(np.asarray, prog.take(result.best_params, lane))


def _progress_line(
    label, epoch, max_epochs, lanes, loss, metrics, best, alive, epoch_times, slots: int, queued=0
):
  """One line per epoch: loss, validation NDCG/HR, best so far, speed and an ETA bound
  (for lanes in series, the `queued` lanes still to train count at the epoch cap)."""
  k = len(lanes)
  typical = float(np.median(epoch_times[1:])) if len(epoch_times) > 1 else epoch_times[-1]
  left = (max_epochs - epoch if alive.any() else 0) + queued * max_epochs
  eta = format_eta(typical * left)
  live = [i for i, l in enumerate(lanes) if l.status == "running" or l.stopped_epoch == epoch]
  finite = [loss[i] for i in live if np.isfinite(loss[i])]
  mean_loss = float(np.mean(finite)) if finite else float("nan")
  msg = (f"[{label}] " if label else "") + f"epoch {epoch:3d}/{max_epochs}  loss {mean_loss:.4f}"
  shown = [m for m in metrics if m is not None]
  if shown and k == 1:
    msg += f"  val NDCG@10 {shown[0]['NDCG@10']:.4f} HR@10 {shown[0]['HR@10']:.4f}"
  elif shown:
    msg += f"  val NDCG@10 max {max(m['NDCG@10'] for m in shown):.4f}"
  lead = int(np.argmax(np.where(np.isfinite(best[:k]), best[:k], -1)))
  msg += f"  best {best[lead]:.4f} @ epoch {lanes[lead].best_epoch}"
  if k > 1:
    msg += f"  lanes alive {int(alive.sum())}/{k}" + (f" in {slots} slots" if slots < k else "")
  if len(epoch_times) == 1 and left:  # a bucket's first epoch may include its compilation
    return msg + f"  {epoch_times[-1]:.1f} s/epoch  ETA after the next epoch (this one may compile)"
  return msg + f"  {epoch_times[-1]:.1f} s/epoch  ETA ≤{eta}"


def lane_mesh(devices=None) -> Mesh:
  """A 1-D mesh named `lanes` over all (or the given) devices."""
  devices = np.asarray(devices if devices is not None else jax.devices())
  return Mesh(devices.reshape(-1), (LANES,))
