"""Evaluation: full ranking over all items on device, and the sampled protocol."""

from vmle_jax.eval.ranking import (
    DEFAULT_KS,
    RANK_TIES,
    metrics_from_ranks,
    sample_candidates,
    sampled_ranks,
    target_ranks,
)

__all__ = [
    "DEFAULT_KS",
    "RANK_TIES",
    "metrics_from_ranks",
    "sample_candidates",
    "sampled_ranks",
    "target_ranks",
]
