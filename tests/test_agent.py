"""The agent: the closed loop, bad planner answers, the Gemini path, memory and transfer."""

import json
import os
import secrets
import signal
import sqlite3
import time

import pytest

from vmle_jax.config import Schedule, TrialConfig
from vmle_jax.data import make_synthetic
from vmle_jax.engine import Engine
from vmle_jax.memory import summaries
from vmle_jax.memory.records import Trial, structure_credit
from vmle_jax.memory.store import Store
from vmle_jax.search.agent import AgentStrategy, validate_proposals
from vmle_jax.search.planners import HeuristicPlanner, ReplayPlanner
from vmle_jax.search.comparison import first_divergent_batch
from vmle_jax.search.cost import Price
from vmle_jax.search.policy.evidence import evidence_rules, trial_move
from vmle_jax.search.policy.state import PlannerContext
from vmle_jax.search.recall import with_distances
from vmle_jax.search.space import SearchSpace
from vmle_jax.search.study import StudySpec, run_study

from fake_gemini import FakeGemini, error_reply, slow_reply, text_reply
from launcher import TINY_ARGS, run_launcher
from policy_runner import seed_machine_price

TINY = TrialConfig(hidden=16, blocks=1, heads=1, max_len=12, num_negatives=32)
SCHEDULE = Schedule(max_epochs=4, patience=2)


@pytest.fixture(scope="module")
def data():
  return make_synthetic(num_users=300, num_items=80, seed=11)


@pytest.fixture(scope="module")
def engine(data):
  return Engine(data, SCHEDULE, log=None)


def _space(**fixed):
  return SearchSpace.for_backbone(
      "sasrec",
      base=TINY,
      only=["lr", "dropout", "num_negatives", "weight_decay", "norm"],
      fixed=fixed,
  )


# A summary rule well supported by five trials.
RAISE_DROPOUT = {
    "rule": "raise dropout",
    "key": {"dimension": "dropout", "direction": "up", "value": None},
    "support": 5,
    "contradict": 0,
    "confidence": 0.86,
}


def _first_context(rules: list[dict] | None, stats: dict | None = None) -> PlannerContext:
  """A planner context before any trial, with a summary of `rules` (None: no summary)."""
  return PlannerContext(
      space=_space(),
      dataset="y",
      stats=stats or {"density": 0.5},
      summary=None if rules is None else {"rules": rules},
  )


def _first_candidate(rules: list[dict] | None, stats: dict | None = None):
  """The heuristic planner's first candidate and its proposal (changes from the default)."""
  c = HeuristicPlanner().candidates(_first_context(rules, stats), 1)[0]
  return c, c.proposal(_space().default_config().to_dict())


def _run(
    data,
    engine,
    store,
    planner,
    name,
    trials=6,
    lanes=3,
    space=None,
    minutes=None,
    resume=False,
    **agent_options,
):
  space = space or _space()
  strategy = AgentStrategy(planner, space, log=lambda s: None, **agent_options)
  if minutes is not None:
    seed_machine_price(store)
  spec = StudySpec(
      name=name,
      strategy=f"agent:{planner.name}",
      budget_trials=trials,
      budget_minutes=minutes,
      lanes=lanes,
  )
  summary = run_study(
      spec,
      data,
      store,
      strategy,
      space,
      SCHEDULE,
      engine=engine,
      resume=resume,
      log=lambda s: None,
      engine_log=False,
  )
  return summary, store.study(name)


def test_validation_names_every_problem():
  space = _space()
  base = space.default_config().to_dict()
  done = {space.default_config().canonical_json()}
  numbers = {space.default_config().canonical_json(): 0}
  accepted, reasons = validate_proposals("not json at all", space, base, done, numbers)
  assert not accepted and "not valid JSON" in reasons[0]
  answer = {
      "proposals": [
          {"changes": {"lr": 0.002}, "dimension": "lr", "hypothesis": "h"},
          {"changes": {"colour": 1}, "dimension": "colour"},
          {"changes": {"dropout": 3.0}, "dimension": "dropout"},
          {"changes": {"lr": base["lr"]}, "dimension": "lr"},
          {"changes": {}, "dimension": "lr"},
      ]
  }
  accepted, reasons = validate_proposals(json.dumps(answer), space, base, done, numbers)
  assert [c.lr for c, _ in accepted] == [0.002]
  text = " | ".join(reasons)
  assert "'colour' is not a searchable parameter" in text
  assert "dropout=3.0 is outside [0.0, 0.8]" in text
  assert "duplicates trial 0, already run" in text
  assert "non-empty 'changes'" in text


def test_heuristic_loop_writes_proposals_reflections_insights_and_summary(data, engine, tmp_path):
  store = Store(str(tmp_path / "m.sqlite"))
  summary, study = _run(data, engine, store, HeuristicPlanner(), "h", trials=7)
  trials = store.finished_trials(study["id"])
  assert len(trials) == 7
  assert trials[0].proposal["kind"] == "playbook"  # the first structure: the playbook's
  assert trials[0].proposal["hypothesis"]
  for t in trials[1:]:
    p = t.proposal
    assert p["hypothesis"] and p["risk"] and p["expected_effect"]
    assert t.reflection, t
  # Rate variants name their bucket's center as parent, and the gain is measured against it.
  variants = [t for t in trials if t.proposal["kind"] == "variant"]
  assert variants and all(t.proposal["one_change"] for t in variants)
  center = {json.dumps(t.config, sort_keys=True, separators=(",", ":")): t for t in trials}
  for t in variants:
    parent = center[t.proposal["anchor_key"]]
    assert t.proposal["parent_number"] == parent.number
    assert t.proposal["parent_value"] == pytest.approx(parent.valid["NDCG@10"])
  insights = store.insights(study_id=study["id"])
  assert insights and all(i["support"] or i["contradict"] for i in insights)
  assert summary["cognition_summary_version"] == 1
  assert "NDCG@10" in summary["best_test"]
  # Test metrics exist only for the best config.
  assert sum(1 for t in trials if t.test) == 1
  calls = store.llm_calls(study["id"])
  assert calls and all(c["planner"] == "heuristic" for c in calls)


def test_agent_buckets_fill_the_lanes(data, engine, tmp_path):
  """Every batch is one structure with rate variants: each bucket has --lanes trials."""
  store = Store(str(tmp_path / "m.sqlite"))
  space = SearchSpace.for_backbone(
      "sasrec", base=TINY, only=["lr", "dropout", "num_negatives", "norm", "weight_decay", "loss"]
  )
  _run(data, engine, store, HeuristicPlanner(), "lanes", trials=16, lanes=4, space=space)
  trials = store.finished_trials(store.study("lanes")["id"])
  sizes = {}
  for t in trials:
    sizes[t.bucket] = sizes.get(t.bucket, 0) + 1
  assert sorted(sizes.values()) == [4, 4, 4, 4]
  structures = {t.signature for t in trials}
  # The structure moves while two batches would follow to build on the move.
  assert len(structures) >= 2


def test_bad_answers_are_rejected_reasked_then_the_heuristic_fills(data, engine, tmp_path):
  bad = [
      "this is not JSON",
      {
          "proposals": [
              {
                  "changes": {"learning_rate": 0.01},
                  "dimension": "learning_rate",
                  "hypothesis": "h",
                  "expected_effect": "e",
                  "risk": "r",
              }
          ]
      },
      {
          "proposals": [
              {
                  "changes": {"lr": 99.0},
                  "dimension": "lr",
                  "hypothesis": "h",
                  "expected_effect": "e",
                  "risk": "r",
              }
          ]
      },
  ]
  path = tmp_path / "transcript.jsonl"
  path.write_text("".join(json.dumps({"purpose": "propose", "content": c}) + "\n" for c in bad))
  store = Store(str(tmp_path / "m.sqlite"))
  summary, study = _run(data, engine, store, ReplayPlanner(str(path)), "r", trials=3, lanes=3)
  calls = store.llm_calls(study["id"])
  outcomes = [c["outcome"] for c in calls if c["purpose"] == "propose"]
  assert outcomes[:3] == ["invalid_json", "rejected", "rejected"]
  assert "fallback" in outcomes
  details = " ".join(c["detail"] or "" for c in calls)
  assert "'learning_rate' is not a searchable parameter" in details and "lr=99.0" in details
  trials = store.finished_trials(study["id"])
  assert len(trials) == 3
  assert all(t.proposal["planner"] == "heuristic" and t.proposal["fallback"] for t in trials)
  assert not any(t.config["lr"] == 99.0 for t in trials)


def _gemini_proposal(*lrs):
  return json.dumps(
      {
          "proposals": [
              {
                  "changes": {"lr": lr},
                  "dimension": "lr",
                  "hypothesis": "a larger step",
                  "expected_effect": "+NDCG",
                  "risk": "divergence",
              }
              for lr in lrs
          ]
      }
  )


REFLECTION = json.dumps(
    {
        "reflections": [{"trial": 1, "text": "the larger step helped"}],
        "rules": [
            {
                "rule": "raise lr on tiny data",
                "dimension": "lr",
                "direction": "up",
                "supporting_trials": [1],
                "contradicting_trials": [],
            },
            {
                "rule": "post-LN",
                "dimension": "norm",
                "direction": "set",
                "value": "post",
                "supporting_trials": [1],
                "contradicting_trials": [],
            },
        ],
    }
)


def test_gemini_planner_against_a_local_fake_server(data, engine, tmp_path, monkeypatch):
  key = f"test-only-{secrets.token_hex(16)}"  # made here, lives only in the environment
  monkeypatch.setenv("GEMINI_API_KEY", key)
  from vmle_jax.search.planners import gemini

  script = [
      error_reply(429),  # rate limited, then...
      text_reply(_gemini_proposal(0.002, 0.003), thoughts_tokens=25),  # ...a good answer
      text_reply(REFLECTION),
      text_reply("{not json"),  # malformed
      text_reply(_gemini_proposal(5.0)),  # out of range
      slow_reply(3.0, _gemini_proposal(0.004)),  # times out (client timeout 1 s) ...
      slow_reply(3.0, _gemini_proposal(0.004)),
      text_reply(REFLECTION),
  ]
  fake = FakeGemini(script)
  try:
    planner = gemini.GeminiPlanner(
        model="gemini-test", base_url=fake.url, timeout_s=1.0, max_attempts=2, backoff_s=0.0
    )
    store = Store(str(tmp_path / "m.sqlite"))
    from vmle_jax.search.planners import Transcript

    summary, study = _run(
        data,
        engine,
        store,
        planner,
        "g",
        trials=3,
        lanes=2,
        transcript=Transcript(str(tmp_path / "transcript.jsonl")),
    )
  finally:
    fake.close()
  assert all(r["headers"].get("x-goog-api-key") == key for r in fake.requests)
  assert all("gemini-test:generateContent" in r["path"] for r in fake.requests)
  trials = store.finished_trials(study["id"])
  assert [t.config["lr"] for t in trials[:2]] == [0.002, 0.003]
  assert trials[0].proposal["planner"] == "gemini"
  assert trials[1].reflection == "the larger step helped"
  assert trials[2].proposal["fallback"]
  calls = store.llm_calls(study["id"])
  outcomes = [c["outcome"] for c in calls]
  assert "ok" in outcomes and "invalid_json" in outcomes and "rejected" in outcomes
  assert "error" in outcomes and "fallback" in outcomes
  ok = next(c for c in calls if c["outcome"] == "ok")
  assert ok["prompt_tokens"] == 120 and ok["answer_tokens"] == 40 and ok["model"] == "gemini-test"
  assert ok["thinking_tokens"] == 25  # a thinking model's reasoning counts in the budget
  error = next(c for c in calls if c["outcome"] == "error")
  assert error["latency_s"] >= 1.0  # the real time a failed call cost, not 0
  assert (
      store.tokens_used(study["id"])
      == sum(c["prompt_tokens"] + c["answer_tokens"] + (c["thinking_tokens"] or 0) for c in calls)
      >= 185
  )
  # A rule's "set" value keeps the parameter's type in the memory.
  norm = [i for i in store.insights(study_id=study["id"]) if i["key"]["dimension"] == "norm"]
  assert norm and norm[0]["key"]["value"] == "post"
  # The prompts carried the playbook, the budget, the trials with their curves, and the
  # reflect prompt each trial's hypothesis and parent.
  prompts = [r["body"]["contents"][0]["parts"][0]["text"] for r in fake.requests]
  first, later = prompts[1], prompts[3]
  assert "## Playbook" in first and "| dimension | start |" in first and "trials are left" in first
  assert "## Search space" in later and "| # | change |" in later and "curve" in later
  assert "the larger step helped" in later  # the stored reflection is read back
  reflect = next(p for p in prompts if "The batch to reflect on" in p)
  assert "hypothesis" in reflect and "a larger step" in reflect
  schema = fake.requests[1]["body"]["generationConfig"]["responseJsonSchema"]
  lr = schema["properties"]["proposals"]["items"]["properties"]["changes"]["properties"]["lr"]
  assert lr["minimum"] == 1e-4 and lr["maximum"] == 1e-2
  # The key is in no file the run wrote.
  store.close()
  for root, _, files in os.walk(tmp_path):
    for f in files:
      with open(os.path.join(root, f), "rb") as fh:
        assert key.encode() not in fh.read(), f


def test_boolean_rule_values_keep_their_type(tmp_path):
  """LLM answers say 'True'; the insight must hold True so that the rule transfers."""
  from vmle_jax.search.space import typed_value

  space = SearchSpace.for_backbone("sasrec")
  typed = lambda dim, v: typed_value(space.dims[dim], v)  # noqa: E731
  assert typed("tie_embeddings", "False") is False and typed("tie_embeddings", "true") is True
  assert typed("hidden", "128") == 128 and typed("loss", "softmax") == "softmax"
  from vmle_jax.search.planners.gemini import proposal_schema, reflection_schema

  props = proposal_schema(space)["properties"]["proposals"]["items"]["properties"]["changes"]
  assert props["properties"]["hidden"]["enum"] == [32, 64, 128, 256]
  assert props["properties"]["tie_embeddings"]["type"] == "boolean"
  assert props["properties"]["dropout"] == {"type": "number", "minimum": 0.0, "maximum": 0.8}
  value = reflection_schema(space)["properties"]["rules"]["items"]["properties"]["value"]
  assert {"type": "boolean"} in value["anyOf"]


def test_summary_distill_export_import_and_transfer(data, engine, tmp_path):
  source = Store(str(tmp_path / "a.sqlite"))
  _run(data, engine, source, HeuristicPlanner(), "a", trials=7)
  summary = source.summary("sasrec")
  # Every move the study tested is weighed: kept, or dropped with its reason (7 trials test
  # each move once or twice, short of what a rule needs: summaries.MIN_SUPPORT).
  assert summary["rules"] + summary["provenance"]["dropped"]
  assert all(r["dropped"] for r in summary["provenance"]["dropped"])
  out, md = summaries.export_summary(source, "sasrec", str(tmp_path / "s.json"))
  assert "| # | rule |" in open(md).read()
  target = Store(str(tmp_path / "b.sqlite"))
  version = summaries.import_summary(target, out)
  imported = target.summary("sasrec", version)
  assert [r["key"] for r in imported["rules"]] == [r["key"] for r in summary["rules"]]
  assert len(imported["provenance"]["dropped"]) == len(summary["provenance"]["dropped"])
  # The heuristic applies a supported summary rule on top of its playbook in the first batch.
  rule = RAISE_DROPOUT | {"datasets": ["x"]}
  candidate, first = _first_candidate([rule])
  _, start = _first_candidate(None)
  applied = candidate.reasons[0].facts["applied"]
  assert first["kind"] == "transfer" and [(d, why) for d, _, why in applied] == [
      ("dropout", "raise dropout")
  ]
  dropout = lambda p: p["changes"].get("dropout", TINY.dropout)  # noqa: E731
  assert dropout(first) > dropout(start)
  # The summary carries its sources' statistics through export and import, so the target
  # can tell how far each rule travels: the same data is at distance 0.
  name = data.fingerprint()["name"]
  assert name in imported["provenance"]["stats"]
  stats = {k: v for k, v in data.fingerprint().items() if k not in ("name", "sha256")}
  near, _ = with_distances(target, stats, imported, [])
  assert all(r["distance"] == 0.0 for r in near["rules"])
  with pytest.raises(ValueError, match="not a vmle-jax cognition summary"):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    summaries.import_summary(target, str(bad))


def test_rules_carry_effect_sizes_and_transfer_starts_with_all_of_them_at_once():
  def trial(i, parent, value):
    return Trial(
        id=i,
        study_id=1,
        number=i,
        config={},
        signature="",
        status="finished",
        valid={"NDCG@10": value},
        proposal={"parent_value": parent},
    )

  gains = {
      t.id: summaries.relative_gain(t)
      for t in (
          trial(1, 0.02, 0.021),
          trial(2, 0.02, 0.03),
          trial(3, 0.02, None),
          trial(4, 0.01, 0.0105),
          trial(5, 0.01, 0.015),
      )
  }
  assert gains[1] == pytest.approx(0.05) and gains[2] == pytest.approx(0.5) and gains[3] is None
  insight = lambda dim, ids: {
      "key": {"dimension": dim, "direction": "up", "value": None},
      "rule": f"raise {dim}",
      "support": ids,
      "contradict": [],
      "dataset": "x",
  }
  rules, _ = summaries.merge_rules(
      [insight("dropout", [1, 4]), insight("num_negatives", [2, 5])],
      [],
      {k: v for k, v in gains.items() if v is not None},
  )
  # Equal evidence, so the larger effect goes first; the effect is in the rule's text.
  assert [r["key"]["dimension"] for r in rules] == ["num_negatives", "dropout"]
  assert rules[0]["gain"] == pytest.approx(0.5) and "+50%" in rules[0]["rule"]
  candidate, first = _first_candidate(rules)
  _, plain = _first_candidate(None)
  # Every transferred rule at once, on top of the playbook's configuration.
  assert first["kind"] == "transfer"
  assert first["changes"]["num_negatives"] > plain["changes"].get(
      "num_negatives", TINY.num_negatives
  )
  applied = [d for d, _, _ in candidate.reasons[0].facts["applied"]]
  assert applied == ["num_negatives", "dropout"]
  # A trial of several changes credits no single move.
  assert (
      trial_move(
          {
              "proposal": {
                  "dimension": "hidden",
                  "direction": "up",
                  "new_value": 128,
                  "one_change": False,
              }
          }
      )
      is None
  )


def test_a_structural_move_is_judged_at_its_structures_best_rate_in_the_batch():
  """Width 256 at the old lr loses to its parent, one lane over at a rescaled lr it wins:
  the move is credited with the better (same structure, same batch), nothing else is."""

  def t(number, batch, hidden, lr, value, dim=None, direction=None, parent=None, blocks=1):
    proposal = {"dimension": dim, "direction": direction, "parent_value": parent}
    config = {"hidden": hidden, "blocks": blocks, "lr": lr, "dropout": 0.2}
    return {
        "number": number,
        "batch": batch,
        "config": config,
        "value": value,
        "proposal": proposal if dim else {},
    }

  trials = [
      t(0, 1, 128, 2e-3, 0.0567),
      t(8, 2, 256, 2e-3, 0.0559, "hidden", "up", 0.0567),
      t(9, 2, 256, 1.4e-3, 0.0582, "lr", "down", 0.0559),
      t(10, 2, 256, 2e-3, 0.0700, "blocks", "up", 0.0567, blocks=2),  # another structure
      t(11, 3, 256, 1e-3, 0.0900, "lr", "down", 0.0582),  # a later batch
  ]
  assert structure_credit(trials) == {8: (0.0582, 9)}
  rules = {(r["dimension"], r["direction"]): r for r in evidence_rules(trials, "x", "sasrec")}
  assert rules[("hidden", "up")]["supporting_trials"] == [8]
  assert rules[("lr", "down")]["supporting_trials"] == [9, 11]
  assert rules[("blocks", "up")]["supporting_trials"] == [10]
  # Without the better lane the width move is contradicted, as the trial itself says.
  alone = [x for x in trials if x["number"] != 9]
  rules = {(r["dimension"], r["direction"]): r for r in evidence_rules(alone, "x", "sasrec")}
  assert rules[("hidden", "up")]["contradicting_trials"] == [8]
  record = Trial(
      id=8,
      study_id=1,
      number=8,
      config={},
      signature="",
      status="finished",
      valid={"NDCG@10": 0.0559},
      proposal={"parent_value": 0.0567},
  )
  assert summaries.relative_gain(record) < 0 < summaries.relative_gain(record, 0.0582)


def test_old_memory_files_are_migrated(tmp_path):
  from vmle_jax.memory.store import _statements, schema_sections

  path = str(tmp_path / "old.sqlite")
  conn = sqlite3.connect(path)
  for statement in _statements(schema_sections()[0][1]):
    conn.execute(statement)
  conn.execute("PRAGMA user_version = 1")
  conn.execute("INSERT INTO datasets (name, sha256, stats, created_at) VALUES ('d', 'x', '{}', 0)")
  conn.commit()
  conn.close()
  store = Store(path)
  assert store.version >= 2 and store.datasets()[0]["name"] == "d"
  assert store.insights() == [] and store.summary("sasrec") is None


TUNE_ARGS = ["--dims=lr,dropout,weight_decay", *TINY_ARGS]


def _tune(tmp_path, *extra, wait=True):
  return run_launcher(tmp_path, "tune", TUNE_ARGS, "t", *extra, wait=wait)


def _rows(db, sql):
  if not os.path.exists(db):
    return []
  conn = sqlite3.connect(db, timeout=30)
  try:
    return conn.execute(sql).fetchall()
  except sqlite3.OperationalError:
    return []
  finally:
    conn.close()


def test_kill_9_mid_round_then_resume(tmp_path):
  db = str(tmp_path / "m.sqlite")
  done_sql = (
      "SELECT id, config, valid FROM trials "
      "WHERE status NOT IN ('running', 'interrupted') ORDER BY number"
  )
  proc = _tune(tmp_path, wait=False)
  deadline = time.time() + 400
  while len(_rows(db, done_sql)) < 3 and time.time() < deadline and proc.poll() is None:
    time.sleep(0.3)
  before = _rows(db, done_sql)
  insights_before = _rows(db, "SELECT key, support FROM insights")
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert 3 <= len(before) < 8
  out = _tune(tmp_path, "--resume")
  assert out.returncode == 0, out.stdout + out.stderr
  after = _rows(db, done_sql)
  assert len(after) == 8 and len({r[1] for r in after}) == 8
  assert after[: len(before)] == before
  keys_after = {r[0] for r in _rows(db, "SELECT key, support FROM insights")}
  assert {r[0] for r in insights_before} <= keys_after
  assert "not an LLM" in out.stdout


def test_heuristic_agent_beats_the_default_on_the_synthetic_default(tmp_path):
  data = make_synthetic()
  space = SearchSpace.for_backbone(
      "sasrec",
      base=TrialConfig(hidden=32, blocks=1, max_len=20, num_negatives=64),
      fixed={"hidden": 32, "blocks": 1, "max_len": 20},
  )
  store = Store(str(tmp_path / "m.sqlite"))
  schedule = Schedule(max_epochs=6, patience=2)
  engine = Engine(data, schedule, log=None)
  strategy = AgentStrategy(HeuristicPlanner(), space, log=lambda s: None)
  spec = StudySpec(name="syn", strategy="agent:heuristic", budget_trials=24, lanes=8)
  summary = run_study(
      spec,
      data,
      store,
      strategy,
      space,
      schedule,
      engine=engine,
      log=lambda s: None,
      engine_log=False,
  )
  trials = store.finished_trials(store.study("syn")["id"])
  assert len(trials) == 24
  default = engine.train([space.default_config()]).lanes[0].valid["NDCG@10"]
  assert summary["best_valid"]["NDCG@10"] > default
  assert store.insights(study_id=store.study("syn")["id"])
  assert store.summary("sasrec") is not None


def test_a_hung_llm_server_costs_at_most_timeout_times_attempts(monkeypatch):
  """A server that accepts the connection and never answers: bounded, then an error."""
  monkeypatch.setenv("GEMINI_API_KEY", f"test-only-{secrets.token_hex(8)}")
  from vmle_jax.search.planners import gemini

  fake = FakeGemini([slow_reply(30.0, _gemini_proposal(0.002))])
  try:
    planner = gemini.GeminiPlanner(
        model="m", base_url=fake.url, timeout_s=1.0, max_attempts=2, backoff_s=5.0
    )
    space = _space()
    ctx = PlannerContext(space=space, dataset="d")
    t0 = time.perf_counter()
    with pytest.raises(gemini.PlannerError, match="after 2 attempts"):
      planner.propose(ctx, 1, [])
    assert time.perf_counter() - t0 < 2.0 + 1.0  # 1 s x 2 attempts (backoff fits inside)
  finally:
    fake.close()


def test_past_the_planner_time_cap_the_heuristic_takes_over(data, engine, tmp_path, monkeypatch):
  monkeypatch.setenv("GEMINI_API_KEY", f"test-only-{secrets.token_hex(8)}")
  from vmle_jax.search.planners import gemini

  fake = FakeGemini([slow_reply(0.2, _gemini_proposal(0.002, 0.003))])
  try:
    planner = gemini.GeminiPlanner(model="m", base_url=fake.url, timeout_s=5.0, max_attempts=1)
    store = Store(str(tmp_path / "m.sqlite"))
    _run(data, engine, store, planner, "cap", trials=4, lanes=2, planner_budget_s=0.1)
  finally:
    fake.close()
  trials = store.finished_trials(store.study("cap")["id"])
  assert [t.proposal["planner"] for t in trials] == ["gemini", "gemini", "heuristic", "heuristic"]
  assert all(t.proposal["fallback"] for t in trials[2:])
  assert len(fake.requests) == 1  # the cap held: one LLM call in the whole study
  sources = {i["source"] for i in store.insights(study_id=store.study("cap")["id"])}
  assert "gemini" not in sources and "heuristic (fallback)" in sources


AMAZON = {"users": 22363, "items": 12101, "density": 0.00073, "avg_len": 8.9}
TOYS = {"users": 19412, "items": 11924, "density": 0.00072, "avg_len": 8.6}
MOVIELENS = {"users": 943, "items": 1682, "density": 0.063, "avg_len": 106.0}


def test_a_lesson_from_data_far_in_statistics_is_set_aside_not_applied():
  # Distances in statistics: a sibling catalogue is near, dense long sequences are far.
  assert summaries.dataset_distance(AMAZON, TOYS) < 0.5 < summaries.NEAR
  assert summaries.dataset_distance(AMAZON, MOVIELENS) > 3 * summaries.NEAR
  rule = RAISE_DROPOUT | {"datasets": ["beauty"]}
  sources = {"beauty": AMAZON}

  def first(target):
    r = {**rule, "distance": summaries.rule_distance(rule, target, sources)}
    return _first_candidate([r], target)[0]

  near, far = first(TOYS), first(MOVIELENS)
  assert near.kind == "transfer" and near.reasons[0].facts["applied"][0][0] == "dropout"
  assert far.kind == "playbook" and not far.reasons[0].facts["applied"]
  assert [rule for rule, _ in far.reasons[0].facts["set_aside"]] == ["raise dropout"]
  # Unknown statistics (an old summary) cannot be judged far: the rule still applies.
  assert summaries.rule_distance(rule, MOVIELENS, {}) is None and summaries.is_near(None)


def test_a_study_cut_at_a_batch_resumes_from_the_batches_kept(data, engine, tmp_path):
  """`Store.cut_study` (bench/replan.py) deletes the batches from the cut on and the
  study's insights; the resumed study re-proposes from the kept batches and rewrites
  its insights, so it ends as if those batches had never run."""
  store = Store(str(tmp_path / "m.sqlite"))
  _, study = _run(data, engine, store, HeuristicPlanner(), "cut", trials=6, lanes=2)
  full = store.finished_trials(study["id"])
  assert sorted({t.batch for t in full}) == [1, 2, 3] and store.insights(study_id=study["id"])
  # The planner that made it proposes every batch alike; a batch made by another does not.
  path = str(tmp_path / "m.sqlite")
  assert first_divergent_batch(path, "cut", data) == (None, 3)
  other = dict(full[2].config, lr=full[2].config["lr"] * 1.01)
  store.update_trial(full[2].id, config=other)
  assert first_divergent_batch(path, "cut", data) == (2, 1)
  store.update_trial(full[2].id, config=full[2].config)
  assert store.cut_study(study["id"], 2) == 4
  assert [t.number for t in store.finished_trials(study["id"])] == [0, 1]
  assert store.study("cut")["status"] == "interrupted"
  assert not store.insights(study_id=study["id"])
  _run(data, engine, store, HeuristicPlanner(), "cut", trials=6, lanes=2, resume=True)
  again = store.finished_trials(study["id"])
  assert [t.batch for t in again] == [t.batch for t in full]
  # The planner is deterministic: the same batches again, now trained a second time.
  assert [t.config for t in again] == [t.config for t in full]
  assert store.insights(study_id=study["id"])


def test_a_second_study_of_the_same_data_adds_to_the_first_ones_insights(data, engine, tmp_path):
  """Insights are kept per data set and merged across the studies that share a memory: a
  second study adds its evidence and leaves the first's as it was; a copy of the first
  carries its own evidence, and re-deriving it from its trials gives the same rules."""
  shared = Store(str(tmp_path / "shared.sqlite"))
  _run(data, engine, shared, HeuristicPlanner(), "s0", recall="study")
  alone = {
      json.dumps(i["key"], sort_keys=True)
      for i in shared.insights(study_id=shared.study("s0")["id"])
  }
  assert alone
  space = SearchSpace.for_backbone(
      "sasrec",
      base=TrialConfig(**{**TINY.to_dict(), "seed": 1}),
      only=["lr", "dropout", "num_negatives", "weight_decay", "norm"],
  )
  _run(data, engine, shared, HeuristicPlanner(), "s1", space=space, recall="study")
  s0, s1 = shared.study("s0")["id"], shared.study("s1")["id"]
  left = {json.dumps(i["key"], sort_keys=True) for i in shared.insights(study_id=s0)}
  assert left == alone  # nothing taken over
  both = [i for i in shared.insights() if set(i["studies"]) == {s0, s1}]
  assert both, "the two studies should share at least one rule"
  for merged in both:
    own = [i for i in shared.insights(study_id=s0) if i["key"] == merged["key"]][0]
    assert set(own["support"]) <= set(merged["support"])
    assert len(merged["support"]) + len(merged["contradict"]) > len(own["support"]) + len(
        own["contradict"]
    )
  fresh = Store(str(tmp_path / "fresh.sqlite"))
  fresh.copy_study(shared, "s0", "s0")
  copied = {
      json.dumps(i["key"], sort_keys=True) for i in fresh.insights(study_id=fresh.study("s0")["id"])
  }
  assert copied == alone
  agent = AgentStrategy(HeuristicPlanner(), _space(), log=lambda s: None)
  agent.bind(fresh, fresh.study("s0"), data)
  assert agent.rederive_insights() >= len(alone)
  rederived = {
      json.dumps(i["key"], sort_keys=True) for i in fresh.insights(study_id=fresh.study("s0")["id"])
  }
  assert alone <= rederived


def test_an_agent_reads_its_own_evidence_apart_from_the_other_studies_evidence(data, tmp_path):
  """With a shared memory, a merged insight is read twice: this study's own evidence (which
  its planner does not treat as transferred knowledge) and what the others found."""
  from vmle_jax.memory.records import RuleKey, confidence

  store = Store(str(tmp_path / "m.sqlite"))
  did = store.upsert_dataset(data.fingerprint())
  a = store.create_study("a", did, "sasrec", "agent:heuristic", {"trials": 4}, {"seed": 0})
  b = store.create_study("b", did, "sasrec", "agent:heuristic", {"trials": 4}, {"seed": 1})
  wider, deeper = RuleKey("lr", "up"), RuleKey("dropout", "up")
  store.upsert_insight(did, a, "sasrec", "raise lr (a)", wider, [1, 2], [], 0.75, "h")
  store.upsert_insight(did, b, "sasrec", "raise lr (b)", wider, [11], [12], 0.5, "h")
  store.upsert_insight(did, a, "sasrec", "raise dropout (a)", deeper, [3], [], 0.67, "h")
  agent = AgentStrategy(HeuristicPlanner(), _space(), log=lambda s: None)
  agent.bind(store, store.study("a"), data)
  seen = [
      (i["rule"], i["support"], i["contradict"], i["this_study"]) for i in agent.context().insights
  ]
  assert ("raise lr (a)", [1, 2], [], True) in seen
  assert ("raise lr (b)", [11], [12], False) in seen  # the other study's evidence alone
  assert ("raise dropout (a)", [3], [], True) in seen
  assert len(seen) == 3  # the dropout rule has no other study's evidence to add
  other = [i for i in agent.context().insights if not i["this_study"]][0]
  assert other["confidence"] == confidence(1, 1) and other["studies"] == [b]


def test_the_llm_prompt_prices_structures_only_under_a_minutes_budget():
  from vmle_jax.search.planners.gemini import _budget_text
  from vmle_jax.search.policy.state import BudgetState

  def prompt(left: int, **budget) -> str:
    state = BudgetState(trials=256, trials_left=left, in_compute=True, **budget)
    return _budget_text(PlannerContext(space=_space(), lanes=4, budget=state), 4)

  minutes = {"text": "256 trials / 20 min", "in_minutes": True}
  first = prompt(80, **minutes, seconds_left=1200.0)
  assert "20.0 min are left" in first and "the first batch also measures the price" in first
  later = prompt(20, **minutes, seconds_left=600.0, price=Price(19.2, 2.25))
  assert "10.0 min are left" in later and "2.25 s plus 19.20 s per TFLOP" in later
  assert "no batch that cannot finish in the minutes left" in later
  # Lane-epochs alone: every structure costs the same lane-epochs, so no price talk.
  epochs = prompt(40, text="256 trials / 400 lane-epochs")
  assert "min are left" not in epochs and "dearer structure" not in epochs


def test_the_llm_prompt_lists_the_rates_from_the_policy_table():
  from vmle_jax.search.planners.gemini import render
  from vmle_jax.search.policy.dims import RATE_DIMS

  space = SearchSpace.for_backbone("sasrec")
  prompt = render("propose", PlannerContext(space=space, dataset="d"), n=4)
  for rate in RATE_DIMS:
    assert f"- {rate.name}: " in prompt and rate.why_up in prompt
  dynamic = prompt.split("structural parameter (all but ")[1].split(")")[0]
  assert set(dynamic.split(", ")) == {
      "lr",
      "weight_decay",
      "dropout",
      "attn_dropout",
      "beta2",
      "temperature",
  }
  # A pinned rate is not offered.
  pinned = SearchSpace.for_backbone("sasrec", fixed={"dropout": 0.3})
  assert "- dropout: " not in render("propose", PlannerContext(space=pinned, dataset="d"), n=4)


def test_under_a_minutes_budget_the_planner_sees_the_minutes_left_and_the_measured_price(
    data, engine, tmp_path
):
  """End to end: the first batch is planned with this machine's probed price; the next one
  with the seconds the study has left and a price fitted to the buckets it trained."""
  seen = []

  class Recording(HeuristicPlanner):

    def propose(self, context, n, feedback):
      seen.append(context)
      return super().propose(context, n, feedback)

  store = Store(str(tmp_path / "m.sqlite"))
  _run(data, engine, store, Recording(), "m", trials=6, lanes=3, minutes=30)
  assert len(seen) == 2 and all(c.budget.in_minutes for c in seen)
  first, second = seen[0].budget, seen[1].budget
  assert first.price_source == "probe" and first.price is not None
  assert first.seconds_left == pytest.approx(1800.0, abs=5.0)  # less its start-up, if any
  assert second.price_source == "measured"
  spent = sum({t["bucket"]: t["bucket_seconds"] for t in seen[1].trials}.values())
  # Every second is charged: its buckets, and start-up and bookkeeping beside them.
  assert 1800.0 - spent - 10.0 <= second.seconds_left <= 1800.0 - spent
  price = second.price
  assert price.seconds_per_tflop > 0 and price.seconds_per_lane_epoch >= 0
  cfg = {**TINY.to_dict(), **seen[1].best["config"]}
  measured = spent / sum(t["epochs"] for t in seen[1].trials)
  # One structure trained: the price reproduces its measured seconds per lane-epoch.
  assert price.seconds(cfg, seen[1].stats) == pytest.approx(measured)


def test_an_insight_several_studies_hold_is_worded_from_the_merged_counts(tmp_path):
  from policy_runner import fake_study

  store = Store(str(tmp_path / "m.sqlite"))
  space = _space()
  for name in ("one", "two"):  # two studies of the same data set share the memory
    agent = AgentStrategy(HeuristicPlanner(), space, recall="study", log=lambda s: None)
    fake_study(agent, space, store, name=name, trials=8, lanes=4)
  merged = [i for i in store.insights() if len(i["studies"]) == 2]
  assert merged
  for i in merged:
    s, c = len(i["support"]), len(i["contradict"])
    if i["key"].get("basis") == "curve":
      assert i["rule"].startswith(f"curve: {s} trial(s) ")
    else:
      assert f" {s} of {s + c} trials on " in i["rule"], i
