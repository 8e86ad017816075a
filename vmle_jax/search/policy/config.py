"""Every weight and threshold of the offline planner and its playbook, in one frozen config.

`PolicyConfig` holds the planner's knobs grouped by what they decide (gain,
combine, explore, batches, rate variants, jumps); `PlaybookConfig` the
playbook's thresholds, grouped by the rule that reads them
(search/policy/priors.py). Each value carries a comment naming the
measurement behind it, or "unmeasured" where it is an engineer's default.
"The experiment" is the equal-trials CPU experiment
(docs/results/experiment-cpu/README.md) and "equal minutes" the
equal-compute one (docs/results/experiment-cpu-minutes/README.md).
`HeuristicPlanner(config=...)` takes a variant; a change of any value is a
change of the policy, so it is its own commit, checked with
`bench/replan.py --dry_run`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PlaybookConfig:
  """The playbook's thresholds (priors.py), one group per rule.

  Every `*_confidence` is the planner's prior that the rule's start is already right (0..1):
  unmeasured, set by how directly the statistic decides the value (the loss from the
  catalogue 0.8; the width from the interactions 0.45). The planner explores the least
  certain dimensions first, so these order the exploration.
  """

  # ---------------------------- window_covers_histories --------------------------------
  # The smallest window at or above the 90th percentile of lengths: unmeasured (keeps 90%
  # of histories whole; the equal-trials studies never moved off it on ml-100k).
  window_confidence: float = 0.7

  # ---------------------------- batch_for_enough_steps ---------------------------------
  # At least this many optimizer steps per epoch where the data allows: unmeasured.
  batch_min_steps: int = 100
  # The largest batch the playbook starts from: unmeasured.
  batch_max: int = 256
  batch_confidence: float = 0.6

  # ---------------------------- loss_from_catalogue ------------------------------------
  # Bytes of full-softmax logits a lane may hold before the sampled softmax is preferred
  # (forward, gradient and softmax copies in float32): sized for a 16 GiB accelerator with 8
  # lanes; unmeasured on one.
  logits_budget: int = 2 * 1024**3
  logits_copies: int = 3  # logits, their gradient, the softmax
  logits_bytes: int = 4  # float32
  loss_confidence: float = 0.8

  # ---------------------------- negatives_from_catalogue -------------------------------
  # Shared negatives ~ items / 16 within [64, the space's largest]; counts below 16 are not
  # started from: unmeasured (sampled-softmax practice).
  negatives_per_item: float = 1 / 16
  negatives_floor: int = 64
  negatives_smallest_start: int = 16
  negatives_confidence: float = 0.5

  # ---------------------------- width_from_evidence ------------------------------------
  # Width 128 from 50,000 interactions, else 64: unmeasured (a starting point; the width
  # is the first dimension the planner explores, confidence 0.45).
  wide_from_interactions: int = 50_000
  wide: int = 128
  narrow: int = 64
  width_confidence: float = 0.45

  # ---------------------------- steps in the epoch cap (depth, dropout, lr) ------------
  # Optimizer steps at which lr 1e-3 at width 64 is a good default; a cap allowing fewer
  # than half of them is "short": unmeasured (SASRec's reference setting).
  reference_steps: int = 3000
  short_fraction: float = 0.5

  # ---------------------------- depth_from_lengths -------------------------------------
  # Two blocks from a median length of 12 (HSTU always two): unmeasured. With a short cap
  # fewer blocks is the first alternative, held with more confidence: in all 13 agent
  # studies of the experiment the third batch was a deeper stack, and in 11 of them every
  # lane of it was stopped early (docs/design.md, "The search policy").
  deep_from_median_length: float = 12
  deep_blocks: int = 2
  shallow_blocks: int = 1
  depth_confidence_short: float = 0.7
  depth_confidence: float = 0.55

  # ---------------------------- heads_of_width -----------------------------------------
  # Heads of at least 32 dimensions (also the scout's rule): unmeasured; HSTU's reference
  # uses 2.
  min_head_dim: int = 32
  hstu_heads: int = 2
  heads_confidence: float = 0.6

  # ---------------------------- table_from_repeats -------------------------------------
  # A tied output table from a repeat rate of 20%: unmeasured (none of the shared sets
  # repeats).
  tie_from_repeat_rate: float = 0.2
  tie_confidence: float = 0.75

  # ---------------------------- dropout_from_density -----------------------------------
  # 0.2 + 0.15 per decade of sparsity below density 0.05, +0.05 from width 256, -0.1 in a
  # short cap, within [0.1, 0.5] on a 0.05 grid: unmeasured (gives 0.4 on the Amazon sets'
  # density and 0.1 on ml-100k's).
  dropout_base: float = 0.2
  dropout_per_decade: float = 0.15
  dropout_dense_density: float = 0.05
  density_floor: float = 1e-9
  dropout_wide_from: int = 256
  dropout_wide_extra: float = 0.05
  dropout_short_cut: float = 0.1
  dropout_min: float = 0.1
  dropout_max: float = 0.5
  dropout_grid: float = 0.05
  dropout_up: float = 0.15  # the alternatives: this much more, `dropout_down` less
  dropout_down: float = 0.1
  dropout_strong_from: float = 0.35  # wording only: "strong dropout" from here
  dropout_confidence: float = 0.5
  attn_dropout_hstu: float = 0.0  # HSTU's reference
  attn_dropout_confidence: float = 0.5

  # ---------------------------- dropout_for_the_cap (and the decay) -------------------
  # `python bench/regularisation.py` (944 finished or stopped curves of the committed
  # studies). A cap "leaves curves under-trained" below 375 training positives per item
  # (max_epochs x interactions / items): the split that classifies the most curves right,
  # between 297 (ml-100k at 5 epochs: 61% of curves still rising at the cap) and 476
  # (ml-100k at 8 epochs: 27%); the 5-epoch Amazon caps sit at 70-82 (toys 76%, beauty 62%,
  # sports 28% rising). Only five data/cap points, so any value in (297, 476) reads them
  # alike. The steps in the cap do not separate them: ml-100k allows the fewest (10-120).
  under_trained_positives: float = 375
  # In such caps, raising the dropout to 0.45 or more lost in 14 of 14 same-configuration
  # pairs (median -40% NDCG@10, the curves still rising), while moves up to 0.4 stayed
  # within -9%..+7% (29 pairs). The ceiling is one grid step under 0.4, the highest rate no
  # pair lost 10% at, because the edge moves with the data (sports: 0.3 -> 0.45 lost 15%);
  # the step is within the noise of the pairs (`--pairs`: 0.35 -> 0.4 moved -1.5%..+2.2%).
  dropout_ceiling_under_trained: float = 0.35

  # ---------------------------- weight_decay_second_order ------------------------------
  # None to start: unmeasured. In caps that leave curves under-trained the alternative is
  # 0.02, the decay the committed pairs tried there: 0 -> 0.02 or 0.04 moved NDCG@10 by
  # -0.8%..+1.3% in 25 same-configuration pairs (bench/regularisation.py); 0.1 was never
  # tried in such a cap.
  weight_decay_start: float = 0.0
  weight_decay_alternative: float = 0.1
  weight_decay_alternative_under_trained: float = 0.02
  weight_decay_confidence: float = 0.6

  # ---------------------------- lr_from_width_and_steps --------------------------------
  # 1e-3 at width 64, x sqrt(64 / width), x sqrt(reference steps / steps) clipped to
  # [1, 3]: unmeasured (SASRec's reference rate; the usual square-root width rule).
  reference_lr: float = 1e-3
  reference_width: int = 64
  lr_max_boost: float = 3.0
  lr_factor: float = 2.0  # the alternatives: x and / this
  lr_confidence: float = 0.45

  # ---------------------------- reference choices (unmeasured) -------------------------
  beta2: float = 0.98  # original SASRec
  beta2_confidence: float = 0.7
  norm_confidence: float = 0.75
  ffn_confidence: float = 0.7
  ffn_mult: int = 1  # original SASRec
  ffn_mult_confidence: float = 0.65
  positions_confidence: float = 0.7
  l2_norm_confidence: float = 0.65
  temperature_hstu: float = 0.05  # HSTU's reference
  temperature_sasrec: float = 1.0  # no rescaling
  temperature_factor: float = 2.0
  temperature_confidence: float = 0.55
  # HSTU's linear and attention widths: width / 2 and width / 4, at least 16.
  linear_dim_divisor: int = 2
  attention_dim_divisor: int = 4
  hstu_dim_floor: int = 16
  hstu_dims_confidence: float = 0.6
  # A dimension no rule covers: the space's default and its next two values.
  default_confidence: float = 0.5
  default_alternatives: int = 2


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
  """The offline planner's weights (planner.py, phases.py) and the playbook's thresholds."""

  # ---------------------------------- Gain ---------------------------------------------
  # Relative validation gain that counts as an improvement: unmeasured (about the spread of
  # one configuration over data seeds on the CPU runs).
  min_gain: float = 0.005
  # Two structures within this relative cost are priced alike: unmeasured.
  same_cost: float = 0.05

  # --------------------------- Combine, then explore -----------------------------------
  # A combination of moves that paid scores combine_base + combine_weight x its gain (>= 1);
  # an exploration scores (1 - confidence) x rank_decay ** rank (< 1 for every playbook
  # confidence), boosted x curve_boost when the best's curve suggests it and
  # x (rule_base + rule_weight x expected gain) when the memory does. So a combination
  # outranks any unboosted exploration: combine before explore. Unmeasured weights.
  combine_base: float = 1.0
  combine_weight: float = 5.0
  rank_decay: float = 0.6
  curve_boost: float = 2.0
  rule_base: float = 1.0
  rule_weight: float = 5.0
  # A move in a direction that lost in this study (a neighbour value) is down-weighted.
  contradicted: float = 0.3
  # Each alternative of a dimension tried without paying halves the playbook's doubt: the
  # narrower model explored after a wider one lost was stopped early in all four
  # experiment studies that tried it.
  doubt_halving: float = 0.5
  # A dimension the playbook is this sure of is explored only with follow_up_batches left
  # to build on it: read off the experiment, where all 13 agent studies spent their third
  # batch on a deeper stack and 11 of them saw every lane of it stopped early.
  sure: float = 0.6
  follow_up_batches: int = 2

  # ---------------------------------- Batches ------------------------------------------
  # The last batch (the budget holds no more than it) refines the best's rates once the study
  # has tried at least this many structures: unmeasured.
  refine_after_structures: int = 2
  # Above this many lanes a batch holds several structures: unmeasured (one compiled
  # program per 16 lanes keeps a structure's rate variants dense).
  max_lanes_per_structure: int = 16
  # A first-batch scout must be at least this many times cheaper by the cost model: 1.5 by
  # the model (window 100 / width 64 against 200 / 128 on ml-100k) was about 3x in measured
  # seconds on the 2-core CPU.
  scout_ratio: float = 1.5
  # Fewer batches of the playbook's structure than this in the minutes (at the price probed
  # before the first measurement): the first batch spreads its lanes over structures, as an
  # engineer with one or two rounds compares models, not rates. Three: with two rounds left
  # after the first the usual combine-then-explore still has a batch to build on a move
  # (follow_up_batches); the new-data case of issue 37 had about one.
  few_rounds: float = 3.0
  # At most this many structures in such a first batch (the playbook's, the scout, the scout
  # with capacity bought back): a structure per lane would leave no rate variant of the
  # playbook's (its low-regularisation lane); unmeasured.
  max_first_structures: int = 3
  # A summary's best configuration of a near data set is a first-batch lane unless one
  # lane of it would take more than this share of the minutes left (it would leave too
  # little for the batches that refine it); unmeasured. On Toys at 45 minutes the Beauty
  # best (width 256) took 7.6 minutes a lane.
  source_share: float = 0.5

  # ------------------------------- Rate variants ---------------------------------------
  # A rate move that failed this many times without ever paying goes last: unmeasured.
  failed_moves: int = 2
  # Draws around a center: each rate moved by step x U(-draw_span, draw_span) (scaled per
  # rate, dims.py), at most draw_tries_per_lane draws per lane; unmeasured.
  draw_span: float = 1.5
  draw_tries_per_lane: int = 60
  # Seeds of the draws: trials so far x draw_seed_stride + refinement level (a prime, so
  # the seeds of different levels and study sizes do not collide).
  draw_seed_stride: int = 7919

  # The usual laws of the step for a new width: the rate x (old / new) ** power. With the
  # unchanged rate (the bucket's center) they bracket the step; a rate move against the
  # width change goes last: in 8 of the 10 experiment studies whose widened batch carried
  # a doubled rate, that lane was the batch's worst.
  width_law_powers: tuple[float, ...] = (0.5, 1.0)

  # --------------------------- Memory rules on the start -------------------------------
  # A transferred "raise X" moves a log-scale dimension by this factor and a linear one by
  # its range / rule_linear_steps (categorical ones step to the next value): unmeasured.
  rule_log_step: float = 2.0
  rule_linear_steps: int = 8

  # ---------------------------------- Jumps --------------------------------------------
  # With the neighbourhood exhausted: seeded jumps along jump_dims dimensions at once, in
  # at most jump_tries draws.
  jump_dims: int = 2
  jump_tries: int = 200

  playbook: PlaybookConfig = PlaybookConfig()


DEFAULT_POLICY = PolicyConfig()
