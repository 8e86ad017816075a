"""The lanes engine: static/dynamic split, vmapped training and evaluation."""

from vmle_jax.engine.lanes import BucketResult, Engine, LaneResult, epoch_batches

__all__ = ["BucketResult", "Engine", "LaneResult", "epoch_batches"]
