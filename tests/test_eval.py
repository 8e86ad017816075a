"""The full-ranking evaluator against a brute-force numpy ranking."""

import jax.numpy as jnp
import numpy as np
import pytest

from vmle_jax.eval.ranking import (
    metrics_from_ranks,
    sample_candidates,
    sampled_ranks,
    target_ranks,
)


def brute_force_ranks(scores, targets, history=None):
  """Rank = #{items j != target, j >= 1, not in history: score_j >= score_target}."""
  ranks = []
  for u, t in enumerate(targets):
    s = scores[u]
    competing = np.ones(len(s), bool)
    competing[0] = False
    competing[t] = False
    if history is not None:
      for h in history[u]:
        if h != 0 and h != t:
          competing[h] = False
    ranks.append(int(np.sum(competing & (s >= s[t]))))
  return np.array(ranks)


def brute_force_metrics(ranks, ks=(5, 10, 20)):
  out = {}
  for k in ks:
    out[f"HR@{k}"] = np.mean([r < k for r in ranks])
    out[f"NDCG@{k}"] = np.mean([1 / np.log2(r + 2) if r < k else 0.0 for r in ranks])
  out["MRR"] = np.mean([1 / (r + 1) for r in ranks])
  return out


@pytest.mark.parametrize("with_history", [False, True])
@pytest.mark.parametrize("item_chunk", [7, 64, 1000])
def test_full_ranking_matches_brute_force(with_history, item_chunk):
  rng = np.random.default_rng(0)
  users, items, dim = 40, 150, 8
  q = rng.normal(size=(users, dim)).astype(np.float32)
  table = rng.normal(size=(items + 1, dim)).astype(np.float32)
  # Exact ties: duplicate some item vectors (ties must count against the target).
  table[5] = table[9]
  table[17] = table[9]
  targets = rng.integers(1, items + 1, size=users)
  targets[:3] = 9
  history = np.zeros((users, 12), np.int32)
  for u in range(users):
    h = rng.choice(np.arange(1, items + 1), size=rng.integers(1, 12), replace=False)
    history[u, : len(h)] = h
  history[0, 0] = 5  # a tied item in the history
  history[1, 0] = targets[1]  # the target itself in the history stays ranked
  scores = q @ table.T
  expected = brute_force_ranks(scores, targets, history if with_history else None)
  got = np.asarray(
      target_ranks(
          jnp.asarray(q),
          jnp.asarray(table),
          jnp.asarray(targets),
          jnp.asarray(history) if with_history else None,
          item_chunk,
      )
  )
  np.testing.assert_array_equal(got, expected)
  assert got[0] >= 2 - with_history  # ties with items 5 and 17 count against the target
  m, e = metrics_from_ranks(got), brute_force_metrics(expected)
  for key in e:
    assert m[key] == pytest.approx(e[key], abs=1e-12)


def test_constant_model_scores_zero():
  q = jnp.zeros((10, 4))
  table = jnp.zeros((51, 4))
  ranks = target_ranks(q, table, jnp.arange(1, 11), None, 16)
  assert np.all(np.asarray(ranks) == 49)
  assert metrics_from_ranks(ranks)["HR@20"] == 0.0


def test_sampled_protocol():
  rng = np.random.default_rng(1)
  seen = rng.integers(0, 30, size=(20, 10)).astype(np.int32)
  targets = rng.integers(1, 31, size=20)
  cand = sample_candidates(seen, targets, 30, num=9, seed=0)
  for u in range(20):
    assert targets[u] not in cand[u]
    assert not set(cand[u]) & set(seen[u][seen[u] > 0])
    assert len(set(cand[u])) == 9
  q = rng.normal(size=(20, 4)).astype(np.float32)
  table = rng.normal(size=(31, 4)).astype(np.float32)
  ranks = np.asarray(
      sampled_ranks(jnp.asarray(q), jnp.asarray(table), jnp.asarray(targets), jnp.asarray(cand))
  )
  scores = q @ table.T
  expected = [(scores[u, cand[u]] >= scores[u, targets[u]]).sum() for u in range(20)]
  np.testing.assert_array_equal(ranks, expected)
