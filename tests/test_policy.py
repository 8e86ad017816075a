"""The agent's engineering knowledge: the playbook, curve reading, early stopping, compaction."""

import numpy as np
import pytest

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data import make_synthetic
from vmle_jax.engine import Engine
from vmle_jax.memory.store import Store
from vmle_jax.search.cost import Price
from vmle_jax.search.curves import diagnose
from vmle_jax.search.planners import HeuristicPlanner
from vmle_jax.search.policy.config import PlaybookConfig
from vmle_jax.search.policy.priors import playbook, starting_config
from vmle_jax.search.policy.state import BudgetState, PlannerContext
from vmle_jax.search.pruning import MedianRule, make_pruner
from vmle_jax.search.space import SearchSpace
from vmle_jax.search.strategies import make_strategy
from vmle_jax.search.study import StudySpec, run_study


def _stats(users=20_000, items=10_000, p50=6, p90=14, longest=200, density=7e-4, repeat=0.0):
  return {
      "users": users,
      "items": items,
      "interactions": int(users * p50 * 1.4),
      "avg_len": p50 * 1.4,
      "density": density,
      "repeat_rate": repeat,
      "len_quantiles": {
          "min": 5,
          "p25": p50 - 1,
          "p50": p50,
          "p75": p90 - 3,
          "p90": p90,
          "max": longest,
      },
      "has_timestamps": False,
  }


SPACE = SearchSpace.for_backbone("sasrec")


def test_playbook_window_follows_the_length_percentiles():
  short = playbook(_stats(p50=6, p90=14), SPACE)
  long = playbook(_stats(p50=65, p90=244, users=943, items=1682, density=0.06), SPACE)
  assert short["max_len"].value == 20 and long["max_len"].value == 200
  assert "p90" in long["max_len"].rationale
  assert long["blocks"].value >= short["blocks"].value


def test_playbook_loss_from_the_catalogue_and_memory():
  small = playbook(_stats(items=2_000), SPACE)
  huge = playbook(_stats(items=5_000_000, users=10_000_000), SPACE)
  assert small["loss"].value == "softmax"
  assert huge["loss"].value == "sampled_softmax" and huge["num_negatives"].value == 512
  assert "GiB" in huge["loss"].rationale
  tight = playbook(_stats(items=2_000), SPACE, config=PlaybookConfig(logits_budget=1))
  assert tight["loss"].value == "sampled_softmax"


def test_playbook_regularisation_rate_and_table_from_statistics():
  sparse = playbook(_stats(density=5e-4), SPACE)
  dense = playbook(_stats(density=0.05), SPACE)
  assert sparse["dropout"].value > dense["dropout"].value
  few = playbook(_stats(users=900), SPACE, max_epochs=8)
  many = playbook(_stats(users=900), SPACE, max_epochs=400)
  assert few["lr"].value > many["lr"].value  # few steps in the cap: a larger step
  narrow = playbook(_stats(users=900, items=5_000, p50=5), SPACE, max_epochs=400)
  wide = playbook(_stats(users=50_000, items=5_000), SPACE, max_epochs=400)
  assert narrow["hidden"].value < wide["hidden"].value
  assert narrow["lr"].value > wide["lr"].value  # the rate scales down with the width
  assert playbook(_stats(repeat=0.0), SPACE)["tie_embeddings"].value is False
  assert playbook(_stats(repeat=0.5), SPACE)["tie_embeddings"].value is True
  for prior in playbook(_stats(), SPACE).values():
    assert prior.rationale and 0 < prior.confidence < 1 and prior.value not in prior.alternatives
  cfg = starting_config(playbook(_stats(), SPACE), SPACE)
  assert cfg.loss == "softmax" and cfg.max_len == 20 and not cfg.tie_embeddings
  hstu = playbook(_stats(), SearchSpace.for_backbone("hstu"))
  assert hstu["l2_norm"].value is True and hstu["temperature"].value == 0.05


def test_playbook_adds_depth_last_when_the_cap_allows_few_steps():
  long = _stats(p50=65, p90=244, users=943, items=1682, density=0.06)
  few = playbook(long, SPACE, max_epochs=8)["blocks"]  # 8 x 15 steps
  many = playbook(long, SPACE, max_epochs=400)["blocks"]
  assert few.value == many.value == 2
  assert few.alternatives[0] == 1 and many.alternatives[0] == 3
  assert few.confidence > many.confidence and "steps in the epoch cap" in few.rationale


def _trial(values, status="finished", losses=None, epochs=None):
  epochs = epochs or list(range(1, len(values) + 1))
  losses = losses or [5.0 - 0.3 * i for i in range(len(values))]
  return {
      "status": status,
      "curve": [{"epoch": e, "loss": l, "NDCG@10": v} for e, l, v in zip(epochs, losses, values)],
  }


def _planned(
    best_curve: list[float],
    trials_left: int,
    extra: tuple = (),
    stats: dict | None = None,
    lanes: int = 4,
    priced: bool = False,
    summary: dict | None = None,
    budget: dict | None = None,
) -> list:
  """The heuristic planner's next batch of `lanes` candidates after a first batch whose best
  trial has `best_curve` (a 5-epoch cap), with `trials_left` in the budget and `extra`
  trials. Each candidate carries its proposal (`.proposal`: changes from the best)."""
  stats = stats or _stats()
  start = SPACE.values_of(starting_config(playbook(stats, SPACE, 5), SPACE))
  first = [
      {**_trial(best_curve), "number": 0, "batch": 1, "config": start, "proposal": {}},
      {**_trial([0.01, 0.02]), "number": 1, "batch": 1, "config": {**start, "lr": 1e-4}},
  ]
  trials = [dict(t, value=max(p["NDCG@10"] for p in t["curve"])) for t in first]
  trials += [dict(t, batch=2) for t in extra]
  best = max(trials, key=lambda t: t["value"])
  context = PlannerContext(
      space=SPACE,
      dataset="y",
      stats=stats,
      trials=tuple(trials),
      best=best,
      summary=summary,
      max_epochs=5,
      budget=BudgetState(trials_left=trials_left, in_minutes=priced, **(budget or {})),
  )
  return [
      _Planned(c, c.proposal(best["config"])) for c in HeuristicPlanner().candidates(context, lanes)
  ]


class _Planned:
  """A candidate with its phrased proposal: `kind`, `dimension`, `changes` and `reasons`."""

  def __init__(self, candidate, proposal):
    self.candidate, self.kind, self.dimension = candidate, candidate.kind, candidate.dimension
    self.changes, self.reasons = proposal["changes"], candidate.reasons

  def reason(self, code: str):
    """The facts of this candidate's reason `code` (None when it has none)."""
    return next((r.facts for r in self.reasons if r.code == code), None)


def _widths(stats: dict, *widths: int) -> tuple:
  """Trials of the playbook's start at other widths, each worse than the first batch's best."""
  start = SPACE.values_of(starting_config(playbook(stats, SPACE, 5), SPACE))
  return tuple(
      {
          **_trial([0.01, 0.02, 0.03, 0.04, 0.045]),
          "number": 2 + i,
          "config": {**start, "hidden": w},
          "value": 0.045,
          "proposal": {
              "dimension": "hidden",
              "direction": "up" if w > start["hidden"] else "down",
              "parent_value": 0.05,
          },
      }
      for i, w in enumerate(widths)
  )


def test_a_curve_still_rising_at_the_cap_rules_out_deeper_stacks_and_late_sure_moves():
  rising = [0.01, 0.02, 0.03, 0.04, 0.05]  # under-trained at the 5-epoch cap
  start = SPACE.values_of(starting_config(playbook(_stats(), SPACE, 5), SPACE))
  # Budget to spare: a structural move, but never a deeper stack or a larger batch.
  early = _planned(rising, trials_left=40)
  assert early[0].kind == "explore" and early[0].dimension == "hidden"
  for p in early:
    assert p.changes.get("blocks", start["blocks"]) <= start["blocks"]
    assert p.changes.get("batch_size", start["batch_size"]) <= start["batch_size"]
  # One batch left after this one and both other widths tried: the playbook is sure of
  # every other dimension, so the bucket refines the best and says why.
  late = _planned(rising, trials_left=8, extra=_widths(_stats(), 256, 64))
  assert all(p.kind == "variant" and "hidden" not in p.changes for p in late)
  assert not any("blocks" in p.changes for p in late)
  refine = late[0].reason("refine_instead")
  assert refine["against"]["blocks up"] == "under-trained" and refine["batches_after"] == 1
  assert "tie_embeddings" in refine["sure"] and refine["threshold"] == 0.6
  # With many steps in the cap depth is the next doubt: a plateau explores it, a curve still
  # rising at the cap does not.
  big = _stats(users=200_000)
  plateau = _planned([0.02, 0.04, 0.05, 0.05, 0.05], 40, _widths(big, 256, 64), big)
  assert plateau[0].kind == "explore" and plateau[0].changes.get("blocks") == 2
  still_rising = _planned(rising, 40, _widths(big, 256, 64), big)
  assert still_rising[0].kind == "explore"
  assert not any("blocks" in p.changes for p in still_rising)


def test_a_wider_bucket_brackets_the_rate_by_the_width_laws_and_never_raises_it():
  rising = [0.01, 0.02, 0.03, 0.04, 0.05]  # the curve alone would raise the rate first
  wider = _planned(rising, trials_left=40)
  lr = SPACE.values_of(starting_config(playbook(_stats(), SPACE, 5), SPACE))["lr"]
  assert wider[0].changes == {"hidden": 256}
  assert [p.candidate.code for p in wider[1:3]] == ["width_rate", "width_rate"]
  rates = sorted(p.changes.get("lr", lr) for p in wider)
  assert rates[:3] == pytest.approx([lr / 2, lr / 2**0.5, lr], rel=0.01)
  assert all(p.changes.get("lr", lr) <= lr for p in wider)


def test_each_failed_alternative_makes_the_playbook_surer_of_its_value():
  rising = [0.01, 0.02, 0.03, 0.04, 0.05]
  # A wider model lost; one batch would follow: a narrower one is no longer worth a batch.
  late = _planned(rising, trials_left=8, extra=_widths(_stats(), 256))
  assert all(p.kind == "variant" and "hidden" not in p.changes for p in late)
  assert "hidden" in late[0].reason("refine_instead")["sure"]
  # With budget to spare another dimension's doubt now ranks above width 64.
  early = _planned(rising, trials_left=40, extra=_widths(_stats(), 256))
  assert early[0].kind == "explore" and early[0].dimension != "hidden"


# A cognition summary whose evidence says a wider model paid (gain 8%, near data).
WIDER_PAID = {
    "rules": [
        {
            "rule": "raise hidden",
            "key": {"dimension": "hidden", "direction": "up", "value": None},
            "support": 3,
            "contradict": 0,
            "confidence": 0.8,
            "gain": 0.08,
            "distance": 0.5,
        }
    ]
}


def test_under_a_compute_budget_a_dearer_model_needs_evidence_that_it_pays():
  # Long histories and a small catalogue (ml-100k's statistics): width 256 over the window
  # of 200 costs several times the best's lane-epoch, while fewer heads costs the same.
  long = _stats(p50=65, p90=244, users=943, items=1682, density=0.06)
  plateau = [0.02, 0.04, 0.05, 0.05, 0.05]
  by_trials = _planned(plateau, 40, stats=long)
  assert by_trials[0].changes == {"hidden": 256}  # a trial budget: the largest doubt
  assert by_trials[0].reason("per_cost") is None
  by_minutes = _planned(plateau, 40, stats=long, priced=True)
  assert by_minutes[0].kind == "explore" and "hidden" not in by_minutes[0].changes
  # With the memory's evidence that a wider model paid, it is worth its cost again.
  evidence = _planned(plateau, 40, stats=long, priced=True, summary=WIDER_PAID)
  assert evidence[0].changes.get("hidden") == 256
  assert evidence[0].reason("per_cost")["ratio"] > 1.5
  assert evidence[0].reason("explore")["why"] == "memory: raise hidden"


# A price as this machine's probe gives it (search/probe.py): seconds per TFLOP, fixed seconds
# per lane-epoch, seconds per compile unit.
PROBED = Price(seconds_per_tflop=25.0, seconds_per_lane_epoch=0.13, seconds_per_compile_unit=8.0)


def _first_batch(stats: dict, priced: bool) -> list:
  budget = BudgetState(trials_left=64, in_minutes=priced, price=PROBED if priced else None)
  context = PlannerContext(space=SPACE, dataset="y", stats=stats, max_epochs=8, budget=budget)
  base = SPACE.default_config().to_dict()
  return [_Planned(c, c.proposal(base)) for c in HeuristicPlanner().candidates(context, 4)]


def test_under_a_minutes_budget_a_cheaper_scout_shares_the_first_batch():
  long = _stats(p50=65, p90=244, users=943, items=1682, density=0.06)
  structure = lambda p: (p.candidate.values["max_len"], p.candidate.values["hidden"])
  by_trials = _first_batch(long, priced=False)
  assert len({structure(p) for p in by_trials}) == 1
  assert structure(by_trials[0]) == (200, 128)
  by_minutes = _first_batch(long, priced=True)
  assert [p.kind for p in by_minutes][::2] == ["playbook", "scout"]
  assert structure(by_minutes[0]) == structure(by_minutes[1]) == (200, 128)
  assert structure(by_minutes[2]) == structure(by_minutes[3]) != (200, 128)
  assert by_minutes[2].reason("scout")["ratio"] >= 1.5  # priced at least 1.5x cheaper
  # Under a trial budget there is no scout, whatever the data.
  assert all(p.kind != "scout" for p in _first_batch(_stats(), priced=False))


def test_under_a_minutes_budget_no_structure_is_proposed_whose_batch_cannot_finish():
  long = _stats(p50=65, p90=244, users=943, items=1682, density=0.06)
  plateau = [0.02, 0.04, 0.05, 0.05, 0.05]
  start = SPACE.values_of(starting_config(playbook(long, SPACE, 5), SPACE))
  full = lambda values: {**SPACE.default_config().to_dict(), **values}
  measured = Price(seconds_per_tflop=2.0, seconds_per_lane_epoch=3.0)
  price = {"price": measured, "epochs_per_trial": 5.0}
  seconds = lambda p: measured.batch_seconds([full({**start, **p.changes})], long, 5.0)
  best_batch = 4 * measured.batch_seconds([full(start)], long, 5.0)
  # The memory says a wider model paid: with minutes to spare, it is proposed.
  ample = {**price, "seconds_left": 1e9}
  wide = _planned(plateau, 40, stats=long, priced=True, summary=WIDER_PAID, budget=ample)
  assert wide[0].changes.get("hidden") == 256
  assert 4 * seconds(wide[0]) > best_batch
  # Just the best's batch left: nothing dearer is proposed, and the hypothesis says why.
  tight = {**price, "seconds_left": 1.01 * best_batch}
  late = _planned(plateau, 40, stats=long, priced=True, summary=WIDER_PAID, budget=tight)
  assert all(4 * seconds(p) <= tight["seconds_left"] for p in late)
  set_aside = [p.reason("unfit") or p.reason("refine_instead") for p in late]
  assert any(facts and facts.get("moves", facts.get("unfit")) for facts in set_aside)
  # 32 lanes, two structures: the dearer one is counted with the best's lanes beside it,
  # so the whole batch fits.
  for left in (1.2, 1.5, 3.0):
    left *= 8 * best_batch
    budget = {**price, "seconds_left": left}
    batch = _planned(
        plateau, 400, stats=long, priced=True, summary=WIDER_PAID, budget=budget, lanes=32
    )
    assert len(batch) == 32 and sum(seconds(p) for p in batch) <= left, left


def test_a_move_whose_opposite_paid_is_not_walked_back():
  start = SPACE.values_of(starting_config(playbook(_stats(), SPACE, 5), SPACE))
  wider = {
      **_trial([0.02, 0.04, 0.06, 0.07, 0.07]),
      "number": 2,
      "config": {**start, "hidden": 256},
      "value": 0.07,
      "proposal": {"dimension": "hidden", "direction": "up", "parent_value": 0.05},
  }
  # 64 lanes: four structures, the four most promising moves (a narrower model would be one).
  proposals = _planned([0.02, 0.04, 0.05, 0.05, 0.05], 400, (wider,), lanes=64)
  assert len({p.dimension for p in proposals if p.kind == "explore"}) == 4
  assert all(p.changes.get("hidden", 256) >= 256 for p in proposals)


def test_curve_reading():
  assert diagnose(_trial([0.01, 0.02, 0.03, 0.04]), 4).label == "under-trained"
  assert diagnose(_trial([0.02, 0.05, 0.04, 0.035, 0.03], "stopped"), 10).label == "over-fitting"
  assert (
      diagnose(_trial([0.010, 0.0101, 0.0102, 0.0101], losses=[7.0, 6.99, 6.99, 6.98]), 10).label
      == "flat"
  )
  assert diagnose(_trial([0.02, 0.04, 0.045, 0.0449, 0.0448], "stopped"), 10).label == "converged"
  assert diagnose({"status": "diverged", "curve": []}, 10).suggests == (("lr", "down"),)
  assert diagnose(_trial([0.01, 0.02], "pruned"), 10).label == "pruned"
  assert diagnose({"status": "finished", "curve": [{"epoch": 1, "loss": 3.0}]}, 10) is None


def test_median_rule_stops_the_far_behind_and_never_the_leader():
  curves = [
      _trial(v)["curve"]
      for v in ([0.1, 0.2, 0.3], [0.1, 0.15, 0.2], [0.05, 0.1, 0.15], [0.02, 0.05, 0.1])
  ]
  rule = MedianRule(grace_epochs=2, min_trials=4)
  best = np.array([0.01, 0.5, 0.16, 0.13])
  alive = np.array([True, True, True, True])
  # At epoch 2 the references are 0.2, 0.15, 0.1, 0.05: median 0.125.
  assert rule.stop(2, best, alive, curves).tolist() == [True, False, False, False]
  assert not rule.stop(1, best, alive, curves).any()  # grace period
  assert not rule.stop(2, best, alive, curves[:3]).any()  # too few finished trials
  assert not rule.stop(2, np.array([0.01, 0.01, 0.01, 0.01]), ~alive, curves).any()
  # A lane at or above every reference leads and is kept, whatever the median.
  lead = rule.stop(3, np.array([0.3, 0.29]), np.array([True, True]), curves)
  assert lead.tolist() == [False, False]
  with pytest.raises(ValueError, match="early_stop"):
    make_pruner("sometimes", [])


@pytest.fixture(scope="module")
def data():
  return make_synthetic(num_users=300, num_items=80, seed=5)


def test_pruned_lanes_stop_costing_compute_and_leave_the_others_unchanged(data):
  """Compaction: after two of four lanes are pruned the bucket trains two slots, and the
  survivors' curves are those of the run without pruning."""
  engine = Engine(data, Schedule(max_epochs=4, patience=10, lane_execution="vmap"), log=None)
  configs = [
      TrialConfig(hidden=16, blocks=1, max_len=12, num_negatives=16, lr=lr, seed=i)
      for i, lr in enumerate((1e-3, 2e-3, 3e-3, 4e-3))
  ]
  full = engine.train(configs)

  def prune(epoch, best, alive):
    return np.array([False, True, True, False]) if epoch == 1 else np.zeros(4, bool)

  lines = []
  engine.log = lines.append
  cut = engine.train(configs, prune=prune)
  assert [l.status for l in cut.lanes] == ["finished", "pruned", "pruned", "finished"]
  assert [l.epochs for l in cut.lanes] == [4, 1, 1, 4]
  assert "in 2 slots" in lines[-1]
  for i in (0, 3):
    assert [p["loss"] for p in cut.lanes[i].curve] == pytest.approx(
        [p["loss"] for p in full.lanes[i].curve], rel=1e-4
    )
    assert cut.lanes[i].best_value == pytest.approx(full.lanes[i].best_value, abs=1e-4)
  # The best parameters of every lane (pruned ones too) still evaluate.
  test = engine.evaluate(cut, "test")
  assert len(test) == 4 and all("NDCG@10" in m for m in test)
  assert test[0]["NDCG@10"] == pytest.approx(engine.evaluate(full, "test")[0]["NDCG@10"], abs=1e-4)


@pytest.mark.parametrize("name", ["random", "tpe", "grid"])
def test_every_strategy_can_use_the_early_stopping_rule(data, tmp_path, name):
  space = SearchSpace.for_backbone(
      "sasrec", base=TrialConfig(hidden=16, blocks=1, max_len=12), only=["lr", "dropout", "loss"]
  )
  store = Store(str(tmp_path / "m.sqlite"))
  spec = StudySpec(name=name, strategy=name, budget_trials=10, lanes=2, early_stop="median")
  run_study(
      spec,
      data,
      store,
      make_strategy(name, space, seed=0, lanes=2),
      space,
      Schedule(max_epochs=4, patience=4),
      log=lambda s: None,
      engine_log=False,
  )
  trials = store.finished_trials(store.study(name)["id"])
  assert len(trials) == 10
  assert store.study(name)["settings"]["early_stop"] == "median"
  pruned = [t for t in trials if t.status == "pruned"]
  # Once four trials have finished, a trial behind the median at epoch 2 stops there.
  assert pruned  # these seeds give trials that fall behind
  for t in pruned:
    assert t.number >= 4 and t.epochs < 4 and "pruned" in t.error


@pytest.mark.parametrize("backbone", ["sasrec", "hstu"])
def test_the_planner_climbs_a_smooth_objective_on_the_fake_loop(tmp_path, backbone):
  """Through the shared fake loop (no JAX): batch after batch the best improves on the
  first batch's, and no configuration is proposed twice."""
  from policy_runner import fake_study

  from vmle_jax.search.agent import AgentStrategy

  base = TrialConfig(backbone=backbone, hidden=16, blocks=1, max_len=10)
  space = SearchSpace.for_backbone(backbone, base=base)
  agent = AgentStrategy(HeuristicPlanner(), space, log=lambda s: None)
  trials = fake_study(agent, space, Store(str(tmp_path / "m.sqlite")), trials=16, lanes=4)
  first = max(t.value for t in trials if t.batch == 1)
  assert max(t.value for t in trials) > first * 1.01
  assert len({t.config_key for t in trials}) == len(trials) == 16
  assert [t.proposal["kind"] for t in trials[:1]] == ["playbook"]


def test_a_trial_without_a_parent_reports_its_own_value_and_its_structures_best():
  start = SPACE.values_of(starting_config(playbook(_stats(), SPACE, 5), SPACE))
  center = {
      **_trial([0.01, 0.02]),
      "number": 0,
      "batch": 1,
      "config": start,
      "value": 0.02,
      "proposal": {"dimension": "hidden", "changed": ["hidden"], "old_value": 64},
  }
  variant = {**_trial([0.02, 0.03]), "number": 1, "batch": 1, "value": 0.03}
  variant.update(config={**start, "lr": 2e-3}, proposal={"dimension": "lr"})
  ctx = PlannerContext(space=SPACE, trials=(center, variant), max_epochs=5)
  text = HeuristicPlanner().reflect(ctx, [center]).content["reflections"][0]["text"]
  assert "validation NDCG@10 0.0200 (no parent to compare" in text
  assert "its structure reached 0.0300 at its best rate, trial 1" in text


def test_a_planner_takes_a_policy_config_and_its_playbook_thresholds():
  import dataclasses

  from vmle_jax.search.policy.config import PolicyConfig

  context = PlannerContext(space=SPACE, dataset="y", stats=_stats(), max_epochs=5)
  default = HeuristicPlanner().candidates(context, 4)[0]
  assert default.kind == "playbook" and default.values["hidden"] == 128
  narrow = PlaybookConfig(wide_from_interactions=10**9)  # no data set earns the wide model
  planner = HeuristicPlanner(config=dataclasses.replace(PolicyConfig(), playbook=narrow))
  assert planner.candidates(context, 4)[0].values["hidden"] == 64


def _first_batch_in_minutes(stats: dict, minutes: float, price: Price | None) -> list:
  budget = BudgetState(in_minutes=True, in_compute=True, seconds_left=60 * minutes, price=price)
  context = PlannerContext(space=SPACE, dataset="y", stats=stats, max_epochs=5, budget=budget)
  base = SPACE.default_config().to_dict()
  return [_Planned(c, c.proposal(base)) for c in HeuristicPlanner().candidates(context, 4)]


LARGE_CATALOGUE = _stats(users=35_000, items=18_000, p50=6, p90=15, density=4.5e-4)


def test_a_budget_of_one_batch_spreads_the_first_batch_over_structures():
  price = PROBED  # about 8 minutes a playbook lane at 5 epochs
  structure = lambda p: tuple(
      p.candidate.values[d] for d in ("loss", "hidden", "max_len", "blocks")
  )
  one_batch = _first_batch_in_minutes(LARGE_CATALOGUE, 30.0, price)
  assert len({structure(p) for p in one_batch}) >= 3
  assert one_batch[0].reason("few_rounds")["rounds"] < 3
  playbook_lanes = [p for p in one_batch if structure(p) == structure(one_batch[0])]
  dropouts = [p.candidate.values["dropout"] for p in playbook_lanes]
  assert len(dropouts) == 2 and dropouts[1] < dropouts[0]  # its second lane regularises less
  # Many batches fit: the playbook's structure with rate variants, and the scout.
  many = _first_batch_in_minutes(LARGE_CATALOGUE, 600.0, price)
  assert len({structure(p) for p in many}) == 2
  assert all(p.reason("few_rounds") is None for p in many)


def test_the_scout_changes_the_loss_where_the_catalogue_makes_it_dear():
  batch = _first_batch_in_minutes(LARGE_CATALOGUE, 600.0, PROBED)
  assert batch[0].candidate.values["loss"] == "softmax"
  scout = next(p for p in batch if p.kind == "scout")
  assert scout.candidate.values["loss"] == "sampled_softmax"
  assert scout.reason("scout")["changes"][0][0] == "loss"
  # A small catalogue with long histories: the sequence, not the loss, makes a lane dear.
  long = _stats(p50=65, p90=244, users=943, items=1682, density=0.06)
  scout = next(p for p in _first_batch_in_minutes(long, 600.0, PROBED) if p.kind == "scout")
  assert scout.candidate.values["loss"] == "softmax"
  assert scout.reason("scout")["changes"][0][0] in ("max_len", "hidden")


def test_when_the_bests_lane_no_longer_fits_the_last_minutes_train_a_cheaper_one():
  plateau = [0.02, 0.04, 0.05, 0.05, 0.05]
  start = SPACE.values_of(starting_config(playbook(LARGE_CATALOGUE, SPACE, 5), SPACE))
  full = lambda values: {**SPACE.default_config().to_dict(), **values}
  own = 5 * PROBED.seconds(full(start), LARGE_CATALOGUE)  # a lane of the best's structure
  budget = {"price": PROBED, "epochs_per_trial": 5.0, "seconds_left": 0.5 * own}
  batch = _planned(plateau, 4, stats=LARGE_CATALOGUE, priced=True, budget=budget)
  assert batch and batch[0].reason("fits_left") is not None
  assert all(
      5 * PROBED.seconds(full(p.candidate.values), LARGE_CATALOGUE) <= 0.5 * own for p in batch[:1]
  )
