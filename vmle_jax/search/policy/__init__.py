"""The offline search policy as data plus a small engine.

- config.py: `PolicyConfig`, every weight and threshold, each with its evidence;
- dims.py: `RATE_DIMS`, one row per rate dimension the planner moves;
- priors.py: the playbook, one named rule per dimension, applied in dependency order;
- state.py: `PlannerContext` (what planners read), `Candidate` and `Reason`;
- evidence.py: what the study's trials say about each move;
- phases.py: first structure, scout, combine, explore, fit, variants, jumps;
- planner.py: `HeuristicPlanner`, which runs the phases and reflects;
- text.py: every sentence the planner writes.
"""
