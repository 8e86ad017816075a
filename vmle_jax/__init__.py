"""vmle-jax: tune sequential recommenders (SASRec, HSTU) in JAX.

Many configurations train at once as vmapped lanes of one compiled program;
an agent proposes, trains, reflects and writes what it learned to SQLite.
"""

__version__ = "0.1.0"
