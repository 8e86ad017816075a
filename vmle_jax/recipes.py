"""Named, documented configurations ("recipes") that reproduce the README's numbers.

A recipe is a TrialConfig plus the schedule it was run with. `vmle-train
--recipe=NAME` starts from one (flags given explicitly still override), and
`bench/quality.py` runs them. The numbers each produced, with the machine and
wall-clock, are in the README.
"""

from __future__ import annotations

import dataclasses

from vmle_jax.config import Schedule, TrialConfig


@dataclasses.dataclass(frozen=True)
class Recipe:
  config: TrialConfig
  schedule: Schedule
  note: str


RECIPES = {
    # The original SASRec objective: one sampled negative per position, binary
    # cross-entropy. Beauty is sparse, so dropout is high (the SASRec paper
    # uses 0.5 on its sparse Amazon sets); BCE converges slowly, hence the
    # long schedule and patience.
    "sasrec-bce": Recipe(
        TrialConfig(loss="bce", num_negatives=1, hidden=64, blocks=2, heads=1, dropout=0.5,
                    attn_dropout=0.5, lr=1e-3),
        Schedule(max_epochs=300, patience=30, eval_every=2),
        "SASRec with its original BCE loss (1 negative per position)"),
    # Sampled softmax over negatives shared by the batch: 2048 of them cover a
    # sixth of Beauty's catalogue per step at little cost, close to the full
    # softmax; one block suffices for sequences of nine items on average.
    "sasrec-ssm": Recipe(
        TrialConfig(loss="sampled_softmax", num_negatives=2048, hidden=64, blocks=1, heads=1,
                    dropout=0.2, attn_dropout=0.2, lr=1e-3),
        Schedule(max_epochs=200, patience=20),
        "SASRec with sampled softmax over 2048 shared uniform negatives"),
}


def get_recipe(name: str) -> Recipe:
  try:
    return RECIPES[name]
  except KeyError:
    raise ValueError(f"recipe={name!r}: not one of {', '.join(RECIPES)}") from None
