"""A seeded synthetic data set with sequential structure a model can learn.

Items fall into clusters; every item has one "successor" item in a related
cluster. A user's next item is that successor with probability `p_successor`,
else a popular item of the next cluster on a sparse cluster chain, else a
popular item anywhere (noise). Popularity alone therefore ranks poorly while
a sequential model that learns the transitions ranks well. It is the
embedded default: no download, no file, the same data for the same seed.
"""

from __future__ import annotations

import numpy as np

from vmle_jax.data.dataset import SequenceDataset


def make_synthetic(
    num_users: int = 2000,
    num_items: int = 500,
    num_clusters: int = 25,
    min_len: int = 6,
    max_len: int = 30,
    p_successor: float = 0.55,
    p_cluster: float = 0.3,
    seed: int = 0,
    with_timestamps: bool = True,
) -> SequenceDataset:
  """Generates users' chronological sequences; see the module docstring."""
  rng = np.random.default_rng(seed)
  items = np.arange(1, num_items + 1)
  cluster_of = rng.integers(0, num_clusters, size=num_items + 1)
  members = [items[cluster_of[1:] == c] for c in range(num_clusters)]
  members = [m if len(m) else items[:1] for m in members]
  # Zipf-like popularity, shuffled so ids carry no signal.
  pop = 1.0 / np.arange(1, num_items + 1) ** 0.8
  pop = pop[rng.permutation(num_items)]
  pop_all = pop / pop.sum()
  # Each cluster leads to one of two next clusters.
  next_clusters = rng.integers(0, num_clusters, size=(num_clusters, 2))
  successor = np.zeros(num_items + 1, np.int64)
  for i in items:
    nxt = next_clusters[cluster_of[i], rng.integers(0, 2)]
    successor[i] = rng.choice(members[nxt])
  cluster_probs = [pop[m - 1] / pop[m - 1].sum() for m in members]

  lengths = rng.integers(min_len, max_len + 1, size=num_users)
  seqs = np.zeros((num_users, max_len), np.int64)
  seqs[:, 0] = rng.choice(items, size=num_users, p=pop_all)
  for t in range(1, max_len):
    prev = seqs[:, t - 1]
    u = rng.random(num_users)
    nxt = rng.choice(items, size=num_users, p=pop_all)  # noise
    follow = u < p_successor
    nxt[follow] = successor[prev[follow]]
    chain = (u >= p_successor) & (u < p_successor + p_cluster)
    for idx in np.flatnonzero(chain):
      c = next_clusters[cluster_of[prev[idx]], rng.integers(0, 2)]
      nxt[idx] = rng.choice(members[c], p=cluster_probs[c])
    seqs[:, t] = nxt
  sequences = [seqs[u, : lengths[u]] for u in range(num_users)]
  timestamps = None
  if with_timestamps:
    start = 1_500_000_000 + rng.integers(0, 10_000_000, size=num_users)
    gaps = rng.exponential(86400.0, size=(num_users, max_len)).astype(np.int64) + 1
    times = start[:, None] + np.cumsum(gaps, axis=1)
    timestamps = [times[u, : lengths[u]] for u in range(num_users)]
  return SequenceDataset.from_sequences(
      "synthetic",
      sequences,
      num_items=num_items,
      timestamps=timestamps,
      source=f"synthetic(users={num_users}, items={num_items}, seed={seed})",
  )
