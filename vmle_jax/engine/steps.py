"""Pure per-lane functions: init, one training step, query vectors for ranking.

Nothing here knows about lanes: the engine vmaps these over a leading lane
axis. Everything that varies per trial arrives as an argument: `hp` holds
traced scalars (lr, weight_decay, dropout, attn_dropout, beta1, beta2,
param_ema) and `key` is the lane's own PRNG key.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from vmle_jax.models.losses import compute_loss


@flax.struct.dataclass
class LaneState:
  """One lane's training state: parameters, their moving average (what is
  evaluated; equal to params when param_ema is 0), optimizer state, step and
  PRNG key."""

  params: Any
  average: Any
  opt_state: Any
  step: jax.Array
  key: jax.Array  # legacy uint32[2] key: stacks and vmaps like any array


def _decay_mask(params):
  # Decoupled weight decay on matrices and embedding tables, not on biases or LayerNorm.
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(hp: dict) -> optax.GradientTransformation:
  """AdamW whose lr, betas and weight decay live in the optimizer state (per lane).

  `mask` must be static: inject_hyperparams treats any other callable as a
  schedule of the step count, and the mask then read False for every leaf.
  """
  return optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
      learning_rate=hp["lr"],
      b1=hp["beta1"],
      b2=hp["beta2"],
      weight_decay=hp["weight_decay"],
      mask=_decay_mask,
  )


def rates_of(hp: dict) -> dict:
  """The traced rates a model reads (dropout and friends)."""
  return {k: hp[k] for k in ("dropout", "attn_dropout", "temperature")}


def scale_embeddings(params, std):
  """Embedding tables (initialised N(0, 1)) scaled to the lane's traced init_std."""

  def scale(path, x):
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    return x * std if name.endswith("embedding") else x

  return jax.tree.map_with_path(scale, params)


def init_lane(model, max_len: int, hp: dict, seed: jax.Array) -> LaneState:
  """Initial parameters and optimizer state for one lane from its seed."""
  key = jax.random.PRNGKey(seed)
  init_key, run_key = jax.random.split(key)
  dummy = jnp.ones((1, max_len), jnp.int32)
  params = model.init(init_key, dummy, rates_of(hp), None)
  params = scale_embeddings(params, hp["init_std"])
  opt_state = make_optimizer(hp).init(params)
  return LaneState(
      params=params, average=params, opt_state=opt_state, step=jnp.zeros((), jnp.int32), key=run_key
  )


def update_average(average, params, decay: jax.Array, step: jax.Array):
  """Exponential moving average of the parameters after `step` updates.

  The decay warms up as min(decay, (1 + step) / (10 + step)) so that the
  initial parameters are forgotten quickly; decay 0 returns `params`.
  """
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda a, p: d * a + (1.0 - d) * p, average, params)


def train_step(
    model,
    loss: str,
    num_negatives: int,
    state: LaneState,
    batch: dict,
    hp: dict,
    with_average: bool = True,
) -> tuple[LaneState, jax.Array, jax.Array]:
  """One AdamW step on a (packed) batch of rows.

  `batch` holds tokens, segments and positions [R, L + 1] (see
  data/packing.py): inputs are [:, :-1]; the target of an input is the next
  token of the same segment. Returns the new state, the loss and whether the
  step was finite (loss and gradient norm); the caller decides whether to
  keep a non-finite step. Without `with_average` (static: no lane of the
  bucket keeps a parameter average) the average is left as it was, a pass
  over every parameter saved; the caller then evaluates the parameters.
  """
  step_key = jax.random.fold_in(state.key, state.step)
  drop_key, neg_key = jax.random.split(step_key)
  tokens, segments = batch["tokens"], batch["segments"]
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  targets = jnp.where(segments[:, 1:] == segments[:, :-1], targets, 0)

  def loss_fn(params):
    times = batch["times"][:, :-1] if "times" in batch else None
    q, table = model.apply(
        params, inputs, rates_of(hp), drop_key, batch["positions"][:, :-1], segments[:, :-1], times
    )
    return compute_loss(loss, q, table, targets, neg_key, num_negatives)

  value, grads = jax.value_and_grad(loss_fn)(state.params)
  tx = make_optimizer(hp)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  finite = jnp.isfinite(value) & jnp.isfinite(optax.tree.norm(grads))
  average = (
      update_average(state.average, params, hp["param_ema"], state.step)
      if with_average
      else state.average
  )
  new = LaneState(
      params=params, average=average, opt_state=opt_state, step=state.step + 1, key=state.key
  )
  return new, value, finite


def last_queries(
    model, params, inputs: jax.Array, temperature: jax.Array, times: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
  """Eval-mode query at the last position [U, D] and the item table [N + 1, D] (the last
  block computes that position only)."""
  rates = {"dropout": jnp.zeros(()), "attn_dropout": jnp.zeros(()), "temperature": temperature}
  q, table = model.apply(params, inputs, rates, None, None, None, times, last_only=True)
  return q[:, -1], table
