"""SASRec: causality, padding invariance, packing equivalence, traced rates, switches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vmle_jax.config import TrialConfig, backbone_config
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
  rates = rates or {
      "dropout": jnp.float32(0),
      "attn_dropout": jnp.float32(0),
      "temperature": jnp.float32(1),
  }
  return model.apply(params, jnp.asarray(seq), rates, rng, method="encode", **kw)


BACKBONE_CONFIGS = [
    TrialConfig(hidden=16, blocks=2, heads=2, max_len=10, norm=n, positions=p)
    for n in ("pre", "post")
    for p in ("learned", "relative", "rope")
] + [
    backbone_config("hstu", hidden=16, blocks=2, heads=2, max_len=10, positions=p, attn_norm=a)
    for p in ("relative", "learned", "rope")
    for a in ("max_len", "count")
]


def _id(c):
  return f"{c.backbone}-{c.norm}-{c.positions}-{c.attn_norm}"


@pytest.mark.parametrize("backbone", sorted(REGISTRY))
def test_output_shapes(backbone):
  cfg = backbone_config(backbone, hidden=16, blocks=2, heads=2, max_len=10)
  model, params, hp = _init(cfg)
  seq = jnp.asarray(np.random.default_rng(0).integers(0, N_ITEMS + 1, size=(3, 10)))
  q, table = model.apply(params, seq, steps.rates_of(hp))
  assert q.shape == (3, 10, 16) and table.shape == (N_ITEMS + 1, 16)
  last, table2 = steps.last_queries(model, params, seq, 1.0)
  assert last.shape == (3, 16) and table2.shape == table.shape


@pytest.mark.parametrize("cfg", BACKBONE_CONFIGS, ids=_id)
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


@pytest.mark.parametrize("cfg", BACKBONE_CONFIGS, ids=_id)
def test_evaluation_computes_the_last_position_alone_and_gets_the_same_query(cfg):
  # The last block of an evaluation pass queries the last position only: the same
  # vector as the full forward pass, also with timestamps (HSTU's time bias).
  model, params, _ = _init(cfg.replace(time_bias=True))
  rng = np.random.default_rng(1)
  seq = rng.integers(1, N_ITEMS + 1, size=(4, 10))
  seq[0, :6] = 0  # a short, left-padded user
  times = jnp.asarray(np.cumsum(rng.integers(1, 10_000, size=(4, 10)), axis=1), jnp.int32)
  full = np.asarray(_encode(model, params, seq, times=times))[:, -1]
  last = np.asarray(_encode(model, params, seq, times=times, last_only=True))
  assert last.shape == (4, 1, 16)
  np.testing.assert_allclose(last[:, 0], full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", BACKBONE_CONFIGS, ids=_id)
def test_left_padding_does_not_change_the_last_output(cfg):
  model, params, _ = _init(cfg)
  items = np.array([[5, 9, 2, 33, 7]])
  short = np.asarray(_encode(model, params, items))[:, -1]
  padded = np.asarray(_encode(model, params, np.pad(items, ((0, 0), (5, 0)))))[:, -1]
  np.testing.assert_allclose(short, padded, atol=1e-5)


def test_packed_rows_equal_unpacked_rows_loss_and_gradients():
  cfg = TrialConfig(
      hidden=16, blocks=2, heads=2, max_len=8, loss="softmax", dropout=0.0, attn_dropout=0.0
  )
  model, params, hp = _init(cfg)
  users = [[3, 4, 5, 6], [7, 8, 9], [10, 11, 12, 13, 14], [1, 2, 3, 4, 5, 6, 7, 8, 9]]
  width = 9
  plain = np.zeros((4, width), np.int32)
  for r, u in enumerate(users):
    plain[r, width - len(u) :] = u
  packed_tok, packed_seg, packed_pos = [np.zeros((3, width), np.int32) for _ in range(3)]
  placements = {0: (0, 0, 1), 1: (0, 4, 2), 2: (1, 0, 1), 3: (2, 0, 1)}
  for u, (row, start, seg) in placements.items():
    n = len(users[u])
    packed_tok[row, start : start + n] = users[u]
    packed_seg[row, start : start + n] = seg
    packed_pos[row, start : start + n] = [max(n - 2 - j, 0) for j in range(n)]

  def loss_of(params, tok, seg, pos):
    batch = {
        "tokens": jnp.asarray(tok),
        "segments": jnp.asarray(seg),
        "positions": jnp.asarray(pos),
    }
    inputs, targets = batch["tokens"][:, :-1], batch["tokens"][:, 1:]
    targets = jnp.where(batch["segments"][:, 1:] == batch["segments"][:, :-1], targets, 0)
    q, table = model.apply(
        params,
        inputs,
        steps.rates_of(hp),
        None,
        batch["positions"][:, :-1],
        batch["segments"][:, :-1],
    )
    return compute_loss("softmax", q, table, targets, None, 0)

  plain_seg = (plain != 0).astype(np.int32)
  plain_pos = np.broadcast_to(np.maximum(width - 2 - np.arange(width), 0), plain.shape)
  l1, g1 = jax.value_and_grad(loss_of)(params, plain, plain_seg, plain_pos)
  l2, g2 = jax.value_and_grad(loss_of)(params, packed_tok, packed_seg, packed_pos)
  assert float(l1) == pytest.approx(float(l2), rel=1e-5)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
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
  outs = [
      run(
          params,
          {
              "dropout": jnp.float32(r),
              "attn_dropout": jnp.float32(r),
              "temperature": jnp.float32(1),
          },
          key,
      )
      for r in (0.0, 0.3, 0.6)
  ]
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


SWITCHES = {
    "sasrec": {
        "norm": "post",
        "tie_embeddings": False,
        "ffn": "swiglu",
        "positions": "relative",
        "l2_norm": True,
        "scale_embeddings": False,
    },
    "hstu": {"tie_embeddings": False, "positions": "learned", "l2_norm": False},
}


@pytest.mark.parametrize(
    "backbone,field",
    [(b, f) for b in SWITCHES for f in SWITCHES[b]] + [("sasrec", "rope"), ("hstu", "rope")],
)
def test_each_structural_switch_changes_the_computation(backbone, field):
  base = backbone_config(backbone, hidden=16, blocks=1, heads=2, max_len=6)
  flipped = (
      base.replace(positions="rope")
      if field == "rope"
      else base.replace(**{field: SWITCHES[backbone][field]})
  )
  assert flipped.static_signature() != base.static_signature()
  seq = jnp.asarray(np.array([[0, 3, 4, 5, 6, 7], [1, 2, 3, 9, 8, 7]]))
  scores = []
  for cfg in (base, flipped):
    model, params, hp = _init(cfg)
    if field == "tie_embeddings":  # same weights, only the output table differs
      params = jax.tree.map(lambda x: x, params)
    q, table = model.apply(params, seq, steps.rates_of(hp))
    scores.append(np.asarray(q[:, -1] @ table.T))
  assert not np.allclose(scores[0], scores[1], atol=1e-4), field


@pytest.mark.parametrize("backbone", sorted(REGISTRY))
def test_temperature_is_traced_and_scales_scores(backbone):
  cfg = backbone_config(backbone, hidden=16, blocks=1, heads=2, max_len=6)
  model, params, hp = _init(cfg)
  seq = jnp.asarray(np.array([[0, 3, 4, 5, 6, 7]]))
  score = jax.jit(
      lambda t: (lambda q, e: q[:, -1] @ e.T)(
          *model.apply(params, seq, {"dropout": 0.0, "attn_dropout": 0.0, "temperature": t})
      )
  )
  a, b = np.asarray(score(jnp.float32(1.0))), np.asarray(score(jnp.float32(0.1)))
  np.testing.assert_allclose(b, 10 * a, rtol=1e-4)
  assert score._cache_size() == 1


def test_losses_are_finite_and_positive():
  cfg = TrialConfig(hidden=16, blocks=1, heads=1, max_len=6)
  model, params, hp = _init(cfg)
  seq = jnp.asarray(np.random.default_rng(0).integers(0, N_ITEMS + 1, size=(4, 7)))
  q, table = model.apply(params, seq[:, :-1], steps.rates_of(hp), jax.random.PRNGKey(1))
  for loss, n in (("bce", 1), ("bce", 4), ("sampled_softmax", 16), ("softmax", 0)):
    value = compute_loss(loss, q, table, seq[:, 1:], jax.random.PRNGKey(2), n)
    assert np.isfinite(value) and value > 0, loss


@pytest.mark.parametrize("backbone", sorted(REGISTRY))
def test_gradients_are_finite(backbone):
  cfg = backbone_config(backbone, hidden=16, blocks=2, heads=2, max_len=8, num_negatives=8)
  model, params, hp = _init(cfg)
  seq = jnp.asarray(np.random.default_rng(0).integers(0, N_ITEMS + 1, size=(4, 9)))

  def loss(p):
    q, table = model.apply(p, seq[:, :-1], steps.rates_of(hp), jax.random.PRNGKey(1))
    return compute_loss(cfg.loss, q, table, seq[:, 1:], jax.random.PRNGKey(2), cfg.num_negatives)

  grads = jax.grad(loss)(params)
  leaves = jax.tree.leaves(grads)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert sum(float(np.abs(g).sum()) for g in leaves) > 0


def _silu(x):
  return x / (1 + np.exp(-x))


def _layer_norm(x, scale, bias, eps=1e-6):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * scale + bias


@pytest.mark.parametrize("attn_norm", ["max_len", "count"])
def test_one_hstu_layer_matches_numpy(attn_norm):
  from vmle_jax.models.hstu import HSTUBlock
  from vmle_jax.models.layers import causal_mask

  b, l, d, h, ld, ad, max_len, buckets = 2, 7, 12, 2, 5, 3, 9, 8
  block = HSTUBlock(d, h, ld, ad, max_len, "relative", attn_norm, buckets, True)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(b, l, d)).astype(np.float32)
  seq = np.array([[0, 0, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7]])
  positions = np.broadcast_to(np.arange(l - 1, -1, -1), (b, l)).astype(np.int32)
  times = np.cumsum(rng.integers(0, 5000, size=(b, l)), axis=1).astype(np.int32)
  mask = causal_mask(jnp.asarray((seq != 0).astype(np.int32)))
  rates = {"dropout": 0.0, "attn_dropout": 0.0, "temperature": 1.0}
  params = block.init(jax.random.PRNGKey(0), x, mask, positions, times, rates, [None, None])
  # Non-zero biases so that the test sees them.
  params = jax.tree.map(
      lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(p.size), p.shape), params
  )
  out = np.asarray(block.apply(params, x, mask, positions, times, rates, [None, None]))

  p = jax.tree.map(np.asarray, params)["params"]
  xn = _layer_norm(x, p["ln_in"]["scale"], p["ln_in"]["bias"])
  uvqk = _silu(xn @ p["uvqk"]["kernel"] + p["uvqk"]["bias"])
  u, v, q, k = np.split(uvqk, [h * ld, 2 * h * ld, 2 * h * ld + h * ad], axis=-1)
  q, k, v = q.reshape(b, l, h, ad), k.reshape(b, l, h, ad), v.reshape(b, l, h, ld)
  expected = np.zeros((b, l, h * ld), np.float32)
  m = np.asarray(mask)[:, 0]
  rel = p["rel_bias"]["table"]
  tb = p["time_bias"]
  for bi in range(b):
    for hi in range(h):
      for i in range(l):
        acc = np.zeros(ld)
        for j in range(l):
          if not m[bi, i, j]:
            continue
          gap = abs(int(times[bi, i]) - int(times[bi, j]))
          bucket = min(int(np.floor(np.log(max(gap, 1)) / 0.301)), buckets)
          logit = (
              q[bi, i, hi] @ k[bi, j, hi]
              + rel[hi, positions[bi, j] - positions[bi, i] + max_len - 1]
              + tb[hi, bucket]
          )
          n = m[bi, i].sum() if attn_norm == "count" else max_len
          acc += _silu(logit) / n * v[bi, j, hi]
        expected[bi, i, hi * ld : (hi + 1) * ld] = acc
  y = _layer_norm(expected, p["ln_av"]["scale"], p["ln_av"]["bias"]) * u
  y = y @ p["out"]["kernel"] + p["out"]["bias"] + x
  np.testing.assert_allclose(out, y, atol=1e-5)


def test_hstu_uses_timestamps_when_given():
  cfg = backbone_config("hstu", hidden=16, blocks=1, heads=2, max_len=6)
  model = build_model(cfg, N_ITEMS)
  hp = {k: jnp.float32(v) for k, v in cfg.dynamic_values().items()}
  seq = jnp.asarray(np.array([[0, 3, 4, 5, 6, 7]]))
  times = jnp.asarray(np.array([[0, 10, 100, 1000, 10000, 100000]], np.int32))
  params = model.init(jax.random.PRNGKey(0), seq, steps.rates_of(hp), None, None, None, times)
  params = jax.tree.map(lambda p: p + 0.1, params)
  with_t = model.apply(params, seq, steps.rates_of(hp), None, None, None, times)[0]
  without = model.apply(params, seq, steps.rates_of(hp), None, None, None, None)[0]
  assert not np.allclose(with_t, without)


def test_layer_norm_and_softmax_match_flax_and_jax_values_and_gradients():
  """The hand-written backward passes (matmul reductions) equal autodiff's."""
  from flax import linen as nn

  from vmle_jax.models.layers import LayerNorm, softmax

  x = jax.random.normal(jax.random.PRNGKey(0), (3, 7, 16)) * 3 + 1
  cot = jax.random.normal(jax.random.PRNGKey(1), (3, 7, 16))
  params = nn.LayerNorm(epsilon=1e-6).init(jax.random.PRNGKey(2), x)
  params = jax.tree.map(
      lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(3), p.shape), params
  )

  def value_and_grads(apply):
    return jax.value_and_grad(lambda p, x: (apply(p, x) * cot).sum(), argnums=(0, 1))(params, x)

  ours = value_and_grads(LayerNorm(epsilon=1e-6).apply)
  flax_ = value_and_grads(nn.LayerNorm(epsilon=1e-6).apply)
  assert LayerNorm().init(jax.random.PRNGKey(2), x).keys() == params.keys()
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(flax_)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

  masked = jnp.where(jnp.tril(jnp.ones((7, 16), bool)), x, -1e9)  # a row may be mostly masked
  ours = jax.value_and_grad(lambda z: (softmax(z) * cot).sum())(masked)
  ref = jax.value_and_grad(lambda z: (jax.nn.softmax(z, axis=-1) * cot).sum())(masked)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
