"""Cognition summaries: evidence from every study, conditions, dropped rules, set-asides."""

import json

import pytest

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data import make_synthetic
from vmle_jax.memory import summaries
from vmle_jax.memory.marginals import study_marginals
from vmle_jax.memory.records import RuleKey, Trial
from vmle_jax.memory.store import Store
from vmle_jax.search.agent import AgentStrategy
from vmle_jax.search.comparison import Comparison, group_name, run_comparison
from vmle_jax.search.planners import HeuristicPlanner
from vmle_jax.search.policy.evidence import MoveEvidence
from vmle_jax.search.policy.phases import memory_rules
from vmle_jax.search.policy.state import PlannerContext
from vmle_jax.search.space import SearchSpace
from vmle_jax.search.strategies import make_strategy

from policy_runner import FakeEngine, fake_study

TINY = TrialConfig(hidden=16, blocks=1, heads=1, max_len=12, num_negatives=32)


def _space():
  return SearchSpace.for_backbone("sasrec", base=TINY, only=["lr", "dropout", "weight_decay"])


def more_dropout_is_better(cfg: TrialConfig) -> float:
  return 0.05 + 0.1 * cfg.dropout


def less_dropout_is_better(cfg: TrialConfig) -> float:
  return 0.15 - 0.1 * cfg.dropout


def _trial(number: int, value: float, **config) -> Trial:
  return Trial(
      id=number,
      study_id=1,
      number=number,
      config=config,
      signature="",
      status="finished",
      valid={"NDCG@10": value},
  )


def test_a_baseline_studys_best_quarter_is_read_as_a_move_from_the_start():
  # The best trials have the high dropouts, whatever their lr: "raise dropout" from 0.2.
  trials = [
      _trial(i, 0.01 * d, dropout=d / 10, lr=1e-3 * (1 + i % 2), hidden=16 * d)
      for i, d in enumerate(range(1, 9))
  ]
  start = {"dropout": 0.2, "lr": 1.5e-3, "hidden": 32}
  found = {f["key"]: f for f in study_marginals(trials, start)}
  # A structure's marginal mixes it with the rates drawn beside it: read only on request.
  assert RuleKey("hidden", "up") not in found
  assert RuleKey("hidden", "up") in {f["key"] for f in study_marginals(trials, start, None)}
  raise_dropout = found[RuleKey("dropout", "up")]
  assert raise_dropout["opposite"] == RuleKey("dropout", "down") and raise_dropout["gain"] > 0
  assert RuleKey("lr", "up") not in found and RuleKey("lr", "down") not in found
  # A best quarter on one side whose side does worse at the median says nothing.
  confounded = [
      _trial(i, v, lr=lr)
      for i, (v, lr) in enumerate([(0.9, 1.0), (0.8, 1.0)] + [(0.5, 2.0)] * 3 + [(0.1, 1.0)] * 3)
  ]
  assert study_marginals(confounded, {"lr": 1.5}) == []
  # Too few trials to split into a best quarter and a rest: no finding.
  assert study_marginals(trials[:5], {"dropout": 0.2}) == []


def test_a_tpe_study_contributes_evidence_to_the_summary(tmp_path):
  store = Store(str(tmp_path / "m.sqlite"))

  def random_study(seed):
    name = f"rand-{seed}"
    fake_study(
        make_strategy("random", _space(), seed=seed),
        _space(),
        store,
        name=name,
        trials=12,
        objective=more_dropout_is_better,
    )
    store.set_study_status(store.study(name)["id"], "finished")

  def dropout_rules(version):
    summary = store.summary("sasrec", version)
    kept = [r for r in summary["rules"] if r["key"]["dimension"] == "dropout"]
    dropped = summary["provenance"]["dropped"]
    return kept, [r for r in dropped if r["key"]["dimension"] == "dropout"], summary

  random_study(0)
  kept, dropped, _ = dropout_rules(summaries.distill(store, "sasrec"))
  # One study is one test: an anecdote, dropped with its reason.
  assert kept == [] and dropped[0]["dropped"] == "one test only: 1 for, none against"
  random_study(1)
  kept, _, summary = dropout_rules(summaries.distill(store, "sasrec"))
  rule = kept[0]
  assert rule["key"]["direction"] == "up" and rule["basis"] == ["marginal"]
  assert rule["studies"] == ["rand-0", "rand-1"] and rule["gain"] > 0
  # The rule says under what it was learned: the data's statistics and the budget.
  assert rule["conditions"]["max_epochs"] == [3, 3]
  assert rule["conditions"]["budgets"] == ["trials"]
  assert rule["conditions"]["stats"]["items"][0] > 0
  assert [s["study"] for s in summary["provenance"]["sources"]] == ["rand-0", "rand-1"]
  # What `vmle-memory summary` prints and `export` writes: rules, dropped rules, sources.
  text = summaries.to_markdown(summaries.document(store, "sasrec"))
  assert "raise dropout: improved 2 of 2 tests" in text and "| rand-1 | " in text


def test_rules_the_evidence_does_not_carry_are_dropped_with_their_reason():
  def insight(dim, direction, support, contradict):
    return {
        "key": {"dimension": dim, "direction": direction, "value": None},
        "rule": f"{direction} {dim}",
        "support": support,
        "contradict": contradict,
        "dataset": "x",
    }

  gains = {1: 0.2, 2: 0.1, 3: -0.1, 4: -0.2, 5: 0.05, 6: -0.3, 7: 0.01, 8: 0.3}
  kept, dropped = summaries.merge_rules(
      [
          insight("dropout", "up", [1, 2], []),
          insight("dropout", "down", [5, 7], []),  # its opposite has more evidence
          insight("hidden", "up", [8], []),  # one test only
          insight("lr", "up", [3], [4, 6]),  # contradicted
      ],
      [],
      gains,
  )
  assert [r["key"]["dimension"] + r["key"]["direction"] for r in kept] == ["dropoutup"]
  reasons = {r["key"]["dimension"] + r["key"]["direction"]: r["dropped"] for r in dropped}
  assert reasons["lrup"].startswith("contradicted: 1 test(s) for, 2 against")
  assert reasons["dropoutdown"].startswith("its opposite has more evidence")
  assert reasons["hiddenup"] == "one test only: 1 for, none against"


def test_a_rule_learned_under_another_epoch_cap_is_set_aside():
  rule = {"conditions": {"max_epochs": [100, 200]}}
  assert summaries.outside_conditions(rule, 150) is None
  assert summaries.outside_conditions(rule, 60) is None  # within a factor 2
  assert "epoch caps 100-200" in summaries.outside_conditions(rule, 5)
  assert summaries.outside_conditions({}, 5) is None  # a v1 rule has no conditions


RAISE_DROPOUT = {
    "rule": "raise dropout: improved 5 of 5 tests",
    "key": {"dimension": "dropout", "direction": "up", "value": None},
    "support": 5,
    "contradict": 0,
    "confidence": 0.86,
    "gain": 0.2,
    "datasets": ["beauty"],
}


def test_a_rule_this_studys_trials_contradict_is_set_aside():
  ctx = PlannerContext(space=_space(), dataset="y", stats={}, summary={"rules": [RAISE_DROPOUT]})
  apply, aside = memory_rules(ctx, {})
  assert [r["rule"] for r in apply] == [RAISE_DROPOUT["rule"]] and aside == []
  # Lowering dropout paid here (trial 3): the rule is contradicted, and set aside.
  paid = MoveEvidence(0.1, trials=[3], support=[3], gains=[0.1])
  apply, aside = memory_rules(ctx, {RuleKey("dropout", "down"): paid})
  assert apply == [] and aside[0]["set_aside"] == "this study's trials #3 contradict it"
  # Raising it tested here without paying: the same.
  failed = MoveEvidence(0.5, trials=[4, 5], contradict=[4, 5], gains=[-0.1, -0.2])
  _, aside = memory_rules(ctx, {RuleKey("dropout", "up"): failed})
  assert aside[0]["set_aside"] == "this study's trials #4, #5 contradict it"


def test_the_agent_sets_aside_a_rule_its_trials_contradict_from_the_next_batch(tmp_path):
  store = Store(str(tmp_path / "m.sqlite"))
  space = _space()
  logs = []
  agent = AgentStrategy(
      HeuristicPlanner(),
      space,
      log=logs.append,
      recall="study",
      summary={"rules": [RAISE_DROPOUT]},
  )
  trials = fake_study(agent, space, store, name="a", trials=12, objective=less_dropout_is_better)
  first = min(trials, key=lambda t: t.number)
  assert first.proposal["kind"] == "transfer"  # the rule applied on the playbook
  noted = [t for t in trials if "set aside from the next batch on" in (t.reflection or "")]
  assert noted, [t.reflection for t in trials]
  assert any("memory rule set aside" in line for line in logs)
  # Later batches no longer apply it: their hypotheses say it is set aside.
  later = [t for t in trials if t.batch > noted[0].batch]
  assert later and all("memory: raise dropout" not in json.dumps(t.proposal) for t in later)


def test_a_summary_for_another_backbone_or_a_newer_format_is_refused_in_one_line(tmp_path):
  path = tmp_path / "s.json"
  doc = {"format": summaries.FORMAT, "backbone": "hstu", "rules": [], "version": 1}
  path.write_text(json.dumps(doc))
  read = summaries.read_summary(str(path))
  with pytest.raises(ValueError) as e:
    summaries.check_backbone(read, "sasrec", str(path))
  assert "is for backbone 'hstu', this study tunes 'sasrec'" in str(e.value)
  assert "\n" not in str(e.value)
  path.write_text(json.dumps({**doc, "format": "vmle-jax cognition summary v9"}))
  with pytest.raises(ValueError, match="not one this vmle-jax reads"):
    summaries.read_summary(str(path))


def test_a_comparison_gives_the_summary_to_agent_summary_only(tmp_path):
  store = Store(str(tmp_path / "m.sqlite"))
  data = make_synthetic(num_users=200, num_items=60, seed=3)
  schedule = Schedule(max_epochs=3, patience=3)
  run_comparison(
      Comparison(
          strategies=("agent", "agent-summary"),
          seeds=(0,),
          lanes=4,
          budget_trials=4,
          dims=("lr", "dropout", "weight_decay"),
          summary={"rules": [RAISE_DROPOUT]},
      ),
      data,
      TINY,
      store,
      FakeEngine(schedule),
      schedule,
      str(tmp_path),
      log=lambda s: None,
  )
  group = group_name(data, TINY)

  def first_kind(strategy):
    trials = store.finished_trials(store.study(f"cmp-{group}-{strategy}-s0")["id"])
    return min(trials, key=lambda t: t.number).proposal["kind"]

  assert first_kind("agent-summary") == "transfer" and first_kind("agent") == "playbook"


def test_a_transferred_start_has_the_playbooks_own_beside_it():
  """The summary's rules were learned elsewhere: the first batch keeps the playbook's own
  configuration as a lane, so the summary can add to the start but not take it away."""
  ctx = PlannerContext(
      space=_space(), dataset="y", stats={"density": 0.5}, summary={"rules": [RAISE_DROPOUT]}
  )
  first = HeuristicPlanner().candidates(ctx, 4)
  assert first[0].kind == "transfer"
  own = [c for c in first if c.reasons and c.reasons[0].code == "own_start"]
  assert len(own) == 1 and own[0].kind == "playbook"
  assert own[0].values["dropout"] < first[0].values["dropout"]
  # Without a summary the first batch is as it always was: no such lane.
  plain = HeuristicPlanner().candidates(
      PlannerContext(space=_space(), dataset="y", stats={"density": 0.5}), 4
  )
  assert not [c for c in plain if c.reasons and c.reasons[0].code == "own_start"]


def test_a_summary_says_which_rules_carry_to_this_data_and_which_it_sets_aside():
  amazon = {"users": 22363, "items": 12101, "density": 0.00073, "avg_len": 8.9}
  movielens = {"users": 943, "items": 1682, "density": 0.063, "avg_len": 106.0}
  doc = {
      "provenance": {"stats": {"beauty": amazon}},
      "rules": [
          RAISE_DROPOUT | {"conditions": {"max_epochs": [5, 5]}},
          RAISE_DROPOUT | {"rule": "weak", "support": 1, "contradict": 1},  # not a rule
      ],
  }
  apply, aside = summaries.placed_rules(doc, amazon, 8)
  assert [r["rule"] for r in apply] == [RAISE_DROPOUT["rule"]] and aside == []
  _, aside = summaries.placed_rules(doc, amazon, 200)  # another epoch cap
  assert aside[0][1] == "learned at epoch caps 5, this study's cap is 200"
  _, aside = summaries.placed_rules(doc, movielens, 5)  # far data
  assert aside[0][1].startswith("learned on data at distance 6.")


AMAZON = {"users": 22363, "items": 12101, "density": 0.00073, "avg_len": 8.9}
MOVIELENS = {"users": 943, "items": 1682, "density": 0.063, "avg_len": 106.0}


def _with_best(config: dict, cap: int = 5) -> dict:
  best = {"config": config, "value": 0.06, "study": "s", "max_epochs": cap, "stats": AMAZON}
  return {"rules": [RAISE_DROPOUT], "provenance": {"bests": {"beauty": best}}}


def test_a_near_data_sets_best_configuration_is_a_first_batch_lane():
  """Rules are single moves; the best configuration of a near data set carries several at
  once, so it is a lane of the first batch there, and not on far data or another cap."""
  source = {"lr": 0.004, "dropout": 0.05, "weight_decay": 0.1}

  def lanes(stats, cap=5):
    summary = _with_best(source, cap)
    ctx = PlannerContext(space=_space(), dataset="y", stats=stats, summary=summary, max_epochs=5)
    return HeuristicPlanner().candidates(ctx, 4)

  near = lanes(AMAZON)
  found = [c for c in near if c.kind == "source"]
  assert len(found) == 1 and found[0].reasons[0].code == "source_best"
  assert {k: found[0].values[k] for k in source} == source
  assert near[0].kind == "transfer"  # the rules' start and the playbook's own still lead
  assert [c for c in near if c.reasons[0].code == "own_start"]
  assert not [c for c in lanes(MOVIELENS) if c.kind == "source"]  # far data
  assert not [c for c in lanes(AMAZON, cap=50) if c.kind == "source"]  # another epoch cap


def test_a_summary_keeps_each_data_sets_best_and_a_combination_the_higher(tmp_path):
  store = Store(str(tmp_path / "m.sqlite"))
  fake_study(
      make_strategy("random", _space(), seed=0),
      _space(),
      store,
      name="rand-0",
      trials=6,
      objective=more_dropout_is_better,
  )
  store.set_study_status(store.study("rand-0")["id"], "finished")
  doc = summaries.document(store, "sasrec") if store.summary("sasrec") else None
  assert doc is None
  summaries.distill(store, "sasrec")
  doc = summaries.document(store, "sasrec")
  ((name, best),) = doc["provenance"]["bests"].items()
  top = max(
      (t for t in store.finished_trials(store.study("rand-0")["id"]) if t.value is not None),
      key=lambda t: t.value,
  )
  assert best["config"] == top.config and best["value"] == top.value
  assert best["study"] == "rand-0" and best["max_epochs"] == 3
  assert "best configuration" in summaries.to_markdown(doc)
  lower = {**best, "value": best["value"] / 2, "study": "other"}
  other = {**doc, "provenance": {**doc["provenance"], "bests": {name: lower}}}
  assert summaries.combine([other, doc])["provenance"]["bests"][name]["study"] == "rand-0"
  path = tmp_path / "bad.json"
  path.write_text(json.dumps({**doc, "provenance": {"bests": {name: {"value": 1}}}}))
  with pytest.raises(ValueError, match="bad.json: provenance.bests"):
    summaries.read_summary(str(path))
