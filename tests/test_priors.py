"""The playbook's rules, one test each: the decision follows its statistic and its threshold.

Each test moves the statistic across the rule's threshold (a field of
PlaybookConfig) and checks the start flips, and that the threshold is read
from the config (a variant config moves the decision), so a rule cannot
silently keep a number of its own.
"""

import dataclasses

import pytest

from vmle_jax.search.policy import priors
from vmle_jax.search.policy.config import PlaybookConfig
from vmle_jax.search.policy.priors import DataProfile, Setting, playbook
from vmle_jax.search.space import SearchSpace

SASREC = SearchSpace.for_backbone("sasrec")
HSTU = SearchSpace.for_backbone("hstu")
CFG = PlaybookConfig()


def profile(**changes) -> DataProfile:
  base = DataProfile(
      users=20_000,
      items=10_000,
      interactions=200_000,
      p50=6,
      p90=14,
      longest=200,
      density=7e-4,
      repeat_rate=0.0,
      has_timestamps=False,
  )
  return dataclasses.replace(base, **changes)


def decide(rule, space=SASREC, cfg=CFG, max_epochs=200, chosen=None, **stats):
  """The rule's prior on a profile with `stats` changed, after `chosen` earlier priors."""
  chosen = {d: priors.Prior(d, v, (), 0.5, "") for d, v in (chosen or {}).items()}
  return rule(Setting(profile(**stats), space, max_epochs, cfg, chosen))


def test_window_covers_histories():
  assert decide(priors.window_covers_histories, p90=14).value == 20
  assert decide(priors.window_covers_histories, p90=21).value == 50
  assert decide(priors.window_covers_histories, p90=5000).value == 200  # the largest window


def test_batch_for_enough_steps():
  assert decide(priors.batch_for_enough_steps, users=20_000).value == 128  # 156 steps
  assert decide(priors.batch_for_enough_steps, users=60_000).value == 256  # capped at batch_max
  assert decide(priors.batch_for_enough_steps, users=900).value == 64  # too few for 100 steps
  fewer = dataclasses.replace(CFG, batch_min_steps=50)
  assert decide(priors.batch_for_enough_steps, cfg=fewer, users=20_000).value == 256


def test_loss_from_catalogue():
  start = {"batch_size": 128, "max_len": 20}
  assert decide(priors.loss_from_catalogue, chosen=start, items=10_000).value == "softmax"
  huge = decide(priors.loss_from_catalogue, chosen=start, items=5_000_000)
  assert huge.value == "sampled_softmax" and "GiB" in huge.rationale
  tight = dataclasses.replace(CFG, logits_budget=1)
  assert decide(priors.loss_from_catalogue, cfg=tight, chosen=start).value == "sampled_softmax"


def test_negatives_from_catalogue():
  assert decide(priors.negatives_from_catalogue, items=1_000).value == 64  # the floor
  assert decide(priors.negatives_from_catalogue, items=4_000).value == 256  # items / 16
  assert decide(priors.negatives_from_catalogue, items=5_000_000).value == 512  # the largest
  half = dataclasses.replace(CFG, negatives_per_item=1 / 8)
  assert decide(priors.negatives_from_catalogue, cfg=half, items=4_000).value == 512


def test_width_from_evidence():
  assert decide(priors.width_from_evidence, interactions=50_000).value == 128
  assert decide(priors.width_from_evidence, interactions=49_999).value == 64
  later = dataclasses.replace(CFG, wide_from_interactions=500_000)
  assert decide(priors.width_from_evidence, cfg=later, interactions=200_000).value == 64


def test_depth_from_lengths():
  assert decide(priors.depth_from_lengths, p50=6).value == 1
  deep = decide(priors.depth_from_lengths, p50=12)
  assert deep.value == 2 and deep.alternatives[0] == 3  # many steps: deeper is next
  # Few steps in the cap (8 epochs x 4 steps): a deeper stack climbs slower, fewer first.
  short = decide(priors.depth_from_lengths, max_epochs=8, p50=12, users=500)
  assert short.alternatives[0] == 1 and short.confidence == CFG.depth_confidence_short
  assert decide(priors.depth_from_lengths, space=HSTU, p50=3).value == 2  # HSTU's reference


def test_heads_of_width():
  assert decide(priors.heads_of_width, chosen={"hidden": 128}).value == 4
  assert decide(priors.heads_of_width, chosen={"hidden": 64}).value == 2
  wide_heads = dataclasses.replace(CFG, min_head_dim=64)
  assert decide(priors.heads_of_width, cfg=wide_heads, chosen={"hidden": 128}).value == 2
  assert decide(priors.heads_of_width, space=HSTU, chosen={"hidden": 128}).value == 2


def test_table_from_repeats():
  assert decide(priors.table_from_repeats, repeat_rate=0.0).value is False
  assert decide(priors.table_from_repeats, repeat_rate=0.2).value is True


def test_dropout_from_density():
  sparse = decide(priors.dropout_from_density, chosen={"hidden": 64}, density=5e-4)
  dense = decide(priors.dropout_from_density, chosen={"hidden": 64}, density=0.05)
  assert sparse.value == 0.5 and dense.value == 0.2  # 0.2 + 0.15 per decade below 0.05
  wide = decide(priors.dropout_from_density, chosen={"hidden": 256}, density=0.05)
  assert wide.value == 0.25
  short = decide(priors.dropout_from_density, max_epochs=2, chosen={"hidden": 64}, density=0.05)
  assert short.value == 0.1 and "steps in the epoch cap" in short.rationale
  assert sparse.alternatives == (0.65, 0.4)


def capped_dropout(max_epochs: int, cfg=CFG, **stats):
  """The density's dropout prior, then the epoch cap's rule on it (None: it stands)."""
  chosen = {"hidden": priors.Prior("hidden", 64, (), 0.5, "")}
  density = decide(priors.dropout_from_density, cfg=cfg, max_epochs=max_epochs, **stats)
  setting = Setting(profile(**stats), SASREC, max_epochs, cfg, {**chosen, "dropout": density})
  return density, priors.dropout_for_the_cap(setting)


def test_dropout_for_the_cap_lowers_dropout_in_a_short_cap():
  # Same statistics (20 positives per item per epoch, density 7e-4): 5 epochs give 100
  # positives per item, under the threshold; 200 epochs give 4,000.
  density, capped = capped_dropout(5)
  assert density.value == 0.4 and density.alternatives == (0.55, 0.3)
  assert capped.value == 0.35 and capped.alternatives == (0.25, 0.15)
  assert max(capped.alternatives) <= CFG.dropout_ceiling_under_trained
  assert "100 training positives per item in the 5-epoch cap" in capped.rationale
  long_density, long_capped = capped_dropout(200)
  assert long_capped is None and long_density.value == 0.5  # the long cap: left alone
  # End to end: the short cap starts lower than the long one on the same data, the attention
  # dropout follows, and the decay's alternative is lighter.
  stats = {"users": 20_000, "items": 10_000, "interactions": 200_000, "density": 7e-4}
  short, long = playbook(stats, SASREC, 5), playbook(stats, SASREC, 200)
  assert short["dropout"].value == 0.35 and long["dropout"].value == 0.5
  assert short["attn_dropout"].value == 0.35 and short["attn_dropout"].alternatives == (0.25,)
  assert long["attn_dropout"].alternatives == (0.65,)
  assert short["weight_decay"].alternatives == (0.02,)
  assert long["weight_decay"].alternatives == (0.1,)


def test_dropout_for_the_cap_threshold_and_ceiling_come_from_the_config():
  # 18 epochs: 360 positives per item (< 375), capped; 19 epochs: 380, left alone.
  assert capped_dropout(18)[1].value == 0.35
  assert capped_dropout(19)[1] is None
  assert capped_dropout(5, cfg=dataclasses.replace(CFG, under_trained_positives=50))[1] is None
  lower = dataclasses.replace(CFG, dropout_ceiling_under_trained=0.2)
  assert capped_dropout(5, cfg=lower)[1].value == 0.2
  # A dense set's dropout (0.1, alternatives 0.25 and 0) already sits under the ceiling.
  assert capped_dropout(5, density=0.05, users=500)[1] is None


def test_attn_dropout_follows():
  assert decide(priors.attn_dropout_follows, chosen={"dropout": 0.35}).value == 0.35
  assert decide(priors.attn_dropout_follows, space=HSTU, chosen={"dropout": 0.35}).value == 0.0


def test_weight_decay_second_order():
  prior = decide(priors.weight_decay_second_order)
  assert prior.value == 0.0 and prior.alternatives == (0.1,)
  short = decide(priors.weight_decay_second_order, max_epochs=5)  # 100 positives per item
  assert short.value == 0.0 and short.alternatives == (0.02,) and "5-epoch cap" in short.rationale


def test_lr_from_width_and_steps():
  wide = decide(priors.lr_from_width_and_steps, chosen={"hidden": 256, "batch_size": 128})
  narrow = decide(priors.lr_from_width_and_steps, chosen={"hidden": 64, "batch_size": 128})
  assert narrow.value == 1e-3 and wide.value == 5e-4  # sqrt(64 / width)
  few = decide(
      priors.lr_from_width_and_steps, max_epochs=5, chosen={"hidden": 64, "batch_size": 128}
  )
  assert few.value == pytest.approx(1e-3 * (3000 / (5 * 157)) ** 0.5, rel=0.01)
  capped = dataclasses.replace(CFG, lr_max_boost=1.5)
  boosted = decide(priors.lr_from_width_and_steps, cfg=capped, max_epochs=1, chosen={"hidden": 64})
  assert boosted.value == 1.5e-3


def test_reference_choices():
  assert decide(priors.beta2_reference).value == 0.98
  assert decide(priors.norm_reference).value == "pre"
  assert decide(priors.ffn_reference).value == "gelu"
  assert decide(priors.ffn_mult_reference).value == 1
  assert decide(priors.positions_reference).value == "learned"
  assert decide(priors.positions_reference, space=HSTU).value == "relative"
  assert decide(priors.l2_norm_reference, space=HSTU).value is True
  assert decide(priors.temperature_reference, space=HSTU).value == 0.05
  assert decide(priors.temperature_reference).value == 1.0


def test_hstu_widths_follow_the_width():
  assert decide(priors.linear_dim_of_width, space=HSTU, chosen={"hidden": 128}).value == 64
  assert decide(priors.attention_dim_of_width, space=HSTU, chosen={"hidden": 128}).value == 32
  assert decide(priors.attention_dim_of_width, space=HSTU, chosen={"hidden": 32}).value == 16
  assert decide(priors.linear_dim_of_width, space=SASREC) is None  # not a SASRec dimension


def test_every_dimension_gets_a_prior_and_pinned_ones_none():
  for space in (SASREC, HSTU):
    out = playbook({"users": 1000, "items": 500}, space)
    assert set(out) == set(space.dims)
  pinned = SearchSpace.for_backbone("sasrec", fixed={"hidden": 256, "batch_size": 512})
  out = playbook({"users": 20_000, "items": 10_000}, pinned)
  assert "hidden" not in out and "batch_size" not in out
  # The rules downstream read the pinned values: the rate of width 256, the loss of batch 512.
  assert out["lr"].value == pytest.approx(5e-4, rel=0.2)
  logits = 512 * 20 * (10_000 + 1) * 12 / 2**20  # batch 512, window 20 (p90 of mean 10)
  assert f"{logits:,.0f} MiB" in out["loss"].rationale and out["heads"].value == 4
