"""SASRec: causality, padding invariance, packing equivalence, traced rates, switches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmle_jax.config import TrialConfig
from vmle_jax.engine import steps
from vmle_jax.models import REGISTRY, build_model
from vmle_jax.models.losses import compute_loss

N_ITEMS = 60


def _init(cfg, seed=0):
  model = build_model(cfg, N_ITEMS)
  hp = {k: jnp.float32(v) for k, v in cfg.dynamic_values().items()}
  state = steps.init_lane(model, cfg.max_len, hp, jnp.uint32(seed))
  return model, state.params, hp


def _encode(model, params, seq, rates=None, rng=None, **kw):
  rates = rates or {"dropout": jnp.float32(0), "attn_dropout": jnp.float32(0)}
  return model.apply(params, jnp.asarray(seq), rates, rng, method="encode", **kw)


BACKBONE_CONFIGS = [TrialConfig(backbone=b, hidden=16, blocks=2, heads=2, max_len=10, norm=n)
                    for b in REGISTRY for n in ("pre", "post")]


@pytest.mark.parametrize("cfg", BACKBONE_CONFIGS, ids=lambda c: f"{c.backbone}-{c.norm}")
def test_causality_future_items_never_change_earlier_outputs(cfg):
  model, params, _ = _init(cfg)
  rng = np.random.default_rng(0)
  seq = rng.integers(1, N_ITEMS + 1, size=(3, 10))
  seq[0, :4] = 0
  base = np.asarray(_encode(model, params, seq))
  for t in (4, 7, 9):
    changed = seq.copy()
    changed[:, t] = (changed[:, t] % N_ITEMS) + 1
    out = np.asarray(_encode(model, params, changed))
    np.testing.assert_allclose(out[:, :t], base[:, :t], atol=1e-6)
    assert np.abs(out[:, t] - base[:, t]).max() > 1e-4


@pytest.mark.parametrize("cfg", BACKBONE_CONFIGS, ids=lambda c: f"{c.backbone}-{c.norm}")
def test_left_padding_does_not_change_the_last_output(cfg):
  model, params, _ = _init(cfg)
  items = np.array([[5, 9, 2, 33, 7]])
  short = np.asarray(_encode(model, params, items))[:, -1]
  padded = np.asarray(_encode(model, params, np.pad(items, ((0, 0), (5, 0)))))[:, -1]
  np.testing.assert_allclose(short, padded, atol=1e-5)


def test_packed_rows_equal_unpacked_rows_loss_and_gradients():
  cfg = TrialConfig(hidden=16, blocks=2, heads=2, max_len=8, loss="softmax", dropout=0.0,
                    attn_dropout=0.0)
  model, params, hp = _init(cfg)
  users = [[3, 4, 5, 6], [7, 8, 9], [10, 11, 12, 13, 14], [1, 2, 3, 4, 5, 6, 7, 8, 9]]
  width = 9
  plain = np.zeros((4, width), np.int32)
  for r, u in enumerate(users):
    plain[r, width - len(u):] = u
  packed_tok, packed_seg, packed_pos = [np.zeros((3, width), np.int32) for _ in range(3)]
  placements = {0: (0, 0, 1), 1: (0, 4, 2), 2: (1, 0, 1), 3: (2, 0, 1)}
  for u, (row, start, seg) in placements.items():
    n = len(users[u])
    packed_tok[row, start:start + n] = users[u]
    packed_seg[row, start:start + n] = seg
    packed_pos[row, start:start + n] = [max(n - 2 - j, 0) for j in range(n)]

  def loss_of(params, tok, seg, pos):
    batch = {"tokens": jnp.asarray(tok), "segments": jnp.asarray(seg),
             "positions": jnp.asarray(pos)}
    inputs, targets = batch["tokens"][:, :-1], batch["tokens"][:, 1:]
    targets = jnp.where(batch["segments"][:, 1:] == batch["segments"][:, :-1], targets, 0)
    q, table = model.apply(params, inputs, steps.rates_of(hp), None,
                           batch["positions"][:, :-1], batch["segments"][:, :-1])
    return compute_loss("softmax", q, table, targets, None, 0)

  plain_seg = (plain != 0).astype(np.int32)
  plain_pos = np.broadcast_to(np.maximum(width - 2 - np.arange(width), 0), plain.shape)
  l1, g1 = jax.value_and_grad(loss_of)(params, plain, plain_seg, plain_pos)
  l2, g2 = jax.value_and_grad(loss_of)(params, packed_tok, packed_seg, packed_pos)
  assert float(l1) == pytest.approx(float(l2), rel=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_rates_are_traced_one_program_for_all_values():
  cfg = TrialConfig(hidden=16, blocks=1, heads=1, max_len=6)
  model, params, _ = _init(cfg)
  calls = []

  @jax.jit
  def run(params, rates, key):
    calls.append(1)
    return model.apply(params, jnp.ones((2, 6), jnp.int32), rates, key, method="encode")

  key = jax.random.PRNGKey(0)
  outs = [run(params, {"dropout": jnp.float32(r), "attn_dropout": jnp.float32(r)}, key)
          for r in (0.0, 0.3, 0.6)]
  assert len(calls) == 1  # traced once for three rates
  assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[1], outs[2])
  # Rate 0 in training mode is the identity of eval mode.
  ev = _encode(model, params, np.ones((2, 6), np.int32))
  np.testing.assert_allclose(outs[0], ev, atol=1e-6)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_dropout_keeps_the_requested_fraction(rate):
  from vmle_jax.models.layers import dropout_keep
  keep = np.asarray(dropout_keep(jax.random.PRNGKey(3), (200, 500), jnp.float32(rate)))
  assert keep.mean() == pytest.approx(1 - rate, abs=0.005)
  other = np.asarray(dropout_keep(jax.random.PRNGKey(4), (200, 500), jnp.float32(rate)))
  if 0 < rate:
    assert (keep != other).mean() > 0.9 * 2 * rate * (1 - rate)  # independent masks


def test_structural_switches_change_the_computation():
  base = TrialConfig(hidden=16, blocks=1, heads=1, max_len=6)
  seq = np.array([[0, 3, 4, 5, 6, 7]])
  outs = {}
  for name, cfg in {"base": base, "post": base.replace(norm="post"),
                    "untied": base.replace(tie_embeddings=False),
                    "relu": base.replace(ffn="relu")}.items():
    model, params, _ = _init(cfg)
    q, table = model.apply(params, jnp.asarray(seq), {"dropout": 0.0, "attn_dropout": 0.0})
    outs[name] = np.asarray(q[0, -1] @ table.T)
  for name in ("post", "untied", "relu"):
    assert not np.allclose(outs[name], outs["base"]), name


def test_losses_are_finite_and_positive():
  cfg = TrialConfig(hidden=16, blocks=1, heads=1, max_len=6)
  model, params, hp = _init(cfg)
  seq = jnp.asarray(np.random.default_rng(0).integers(0, N_ITEMS + 1, size=(4, 7)))
  q, table = model.apply(params, seq[:, :-1], steps.rates_of(hp), jax.random.PRNGKey(1))
  for loss, n in (("bce", 1), ("bce", 4), ("sampled_softmax", 16), ("softmax", 0)):
    value = compute_loss(loss, q, table, seq[:, 1:], jax.random.PRNGKey(2), n)
    assert np.isfinite(value) and value > 0, loss
