-- The vmle-jax memory: one SQLite file per user or project.
-- Sections are applied in order; PRAGMA user_version records the last one
-- applied, so an old file is migrated forward when it is opened.

-- version 1: data sets, studies and trials (L0).
CREATE TABLE datasets (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL,
  sha256       TEXT NOT NULL UNIQUE,   -- content hash prefix of the sequences
  stats        TEXT NOT NULL,          -- JSON: users, items, interactions, length quantiles, density
  created_at   REAL NOT NULL
);

CREATE TABLE studies (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL UNIQUE,
  dataset_id   INTEGER NOT NULL REFERENCES datasets(id),
  backbone     TEXT NOT NULL,
  strategy     TEXT NOT NULL,          -- grid | random | tpe | agent:<planner>
  budget       TEXT NOT NULL,          -- JSON: trials, minutes, tokens
  settings     TEXT NOT NULL,          -- JSON: seed, lanes, schedule, search space
  status       TEXT NOT NULL DEFAULT 'running',   -- running | finished | interrupted
  created_at   REAL NOT NULL,
  updated_at   REAL NOT NULL
);

CREATE TABLE trials (
  id           INTEGER PRIMARY KEY,
  study_id     INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
  number       INTEGER NOT NULL,       -- order of execution within the study, from 0
  config       TEXT NOT NULL,          -- canonical JSON of the TrialConfig: the trial's identity
  signature    TEXT NOT NULL,          -- static signature (JSON) shared by the trials of a bucket
  bucket       INTEGER,                -- trials trained together as lanes share a bucket number
  status       TEXT NOT NULL,          -- running | finished | stopped | diverged | failed
  valid        TEXT,                   -- JSON metrics at the best validation epoch
  test         TEXT,                   -- JSON metrics (only for a study's final best config)
  epochs       INTEGER,
  best_epoch   INTEGER,
  seconds      REAL,                   -- wall-clock of the bucket divided by its lanes
  bucket_seconds REAL,                 -- wall-clock of the whole bucket
  curve        TEXT,                   -- JSON [{epoch, loss, NDCG@10, HR@10}]
  error        TEXT,
  created_at   REAL NOT NULL,
  finished_at  REAL,
  UNIQUE (study_id, config),
  UNIQUE (study_id, number)
);
CREATE INDEX trials_by_status ON trials(study_id, status);

-- version 2: the agent's memory. L1 insights per data set, L2 cognition
-- summaries per backbone, the proposal and reflection of each trial, and an
-- account of every planner call (never an API key).
ALTER TABLE trials ADD COLUMN proposal TEXT;     -- JSON: planner, hypothesis, dimension, expected effect, risk, parent
ALTER TABLE trials ADD COLUMN reflection TEXT;   -- the planner's reading of the outcome

CREATE TABLE insights (
  id           INTEGER PRIMARY KEY,
  dataset_id   INTEGER NOT NULL REFERENCES datasets(id),
  study_id     INTEGER REFERENCES studies(id) ON DELETE SET NULL,
  backbone     TEXT NOT NULL,
  rule         TEXT NOT NULL,          -- one sentence
  key          TEXT NOT NULL,          -- JSON {dimension, direction[, value]}: what the rule says to do
  support      TEXT NOT NULL,          -- JSON list of trial ids that support the rule
  contradict   TEXT NOT NULL,          -- JSON list of trial ids that contradict it
  confidence   REAL NOT NULL,
  source       TEXT NOT NULL,          -- the planner that wrote it
  created_at   REAL NOT NULL,
  updated_at   REAL NOT NULL,
  UNIQUE (dataset_id, backbone, key)
);

CREATE TABLE summaries (
  id           INTEGER PRIMARY KEY,
  backbone     TEXT NOT NULL,
  version      INTEGER NOT NULL,
  rules        TEXT NOT NULL,          -- JSON ordered list of {rule, key, support, contradict, datasets, confidence}
  provenance   TEXT NOT NULL,          -- JSON: studies distilled, files imported
  created_at   REAL NOT NULL,
  UNIQUE (backbone, version)
);

CREATE TABLE llm_calls (
  id            INTEGER PRIMARY KEY,
  study_id      INTEGER REFERENCES studies(id) ON DELETE SET NULL,
  planner       TEXT NOT NULL,
  model         TEXT,
  purpose       TEXT NOT NULL,         -- propose | reflect
  prompt_chars  INTEGER,
  answer_chars  INTEGER,
  prompt_tokens INTEGER,
  answer_tokens INTEGER,
  latency_s     REAL,
  outcome       TEXT NOT NULL,         -- ok | rejected | invalid_json | error | fallback
  detail        TEXT,                  -- the rejection reasons or error text
  created_at    REAL NOT NULL
);

-- version 3: optimizer steps per trial, for the engine's throughput (config-steps/s).
ALTER TABLE trials ADD COLUMN steps INTEGER;

-- version 4: search batches and their planner time (wall-clock of proposing and
-- reflecting, shared by the trials of a batch), pruned trials (a final status:
-- stopped early by the study's early-stopping rule) and thinking tokens of LLM calls.
ALTER TABLE trials ADD COLUMN batch INTEGER;           -- trials proposed together share a batch number
ALTER TABLE trials ADD COLUMN planner_seconds REAL;    -- wall-clock the strategy spent on this trial's batch
ALTER TABLE llm_calls ADD COLUMN thinking_tokens INTEGER;

-- version 5: one owner per study, and trial rows that are never reused.
-- A lease names the process that runs a study; a second process is refused
-- while the owner's heartbeat is fresh. Trials a killed run left `running`
-- are marked `interrupted` and kept (their ids are never reused), so the
-- uniqueness of a configuration within a study holds among the other rows only.
CREATE TABLE leases (
  study_id     INTEGER PRIMARY KEY REFERENCES studies(id) ON DELETE CASCADE,
  owner        TEXT NOT NULL,          -- a random id of the owning process
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  heartbeat    REAL NOT NULL,          -- time.time() of the owner's last sign of life
  acquired_at  REAL NOT NULL
);

CREATE TABLE trials_v5 (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused, even after deletes
  study_id     INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
  number       INTEGER NOT NULL,
  config       TEXT NOT NULL,
  signature    TEXT NOT NULL,
  bucket       INTEGER,
  status       TEXT NOT NULL,          -- running | finished | stopped | pruned | diverged | failed | interrupted
  valid        TEXT,
  test         TEXT,
  epochs       INTEGER,
  best_epoch   INTEGER,
  seconds      REAL,
  bucket_seconds REAL,
  curve        TEXT,
  error        TEXT,
  created_at   REAL NOT NULL,
  finished_at  REAL,
  proposal     TEXT,
  reflection   TEXT,
  steps        INTEGER,
  batch        INTEGER,
  planner_seconds REAL,
  UNIQUE (study_id, number)
);
INSERT INTO trials_v5 (id, study_id, number, config, signature, bucket, status, valid, test,
                       epochs, best_epoch, seconds, bucket_seconds, curve, error, created_at,
                       finished_at, proposal, reflection, steps, batch, planner_seconds)
  SELECT id, study_id, number, config, signature, bucket, status, valid, test, epochs,
         best_epoch, seconds, bucket_seconds, curve, error, created_at, finished_at, proposal,
         reflection, steps, batch, planner_seconds FROM trials;
DROP TABLE trials;
ALTER TABLE trials_v5 RENAME TO trials;
CREATE INDEX trials_by_status ON trials(study_id, status);
CREATE UNIQUE INDEX trials_config ON trials(study_id, config) WHERE status != 'interrupted';

-- version 6: insights merged across the studies that share a memory. Each
-- study's evidence for a rule is its own row here (a study rewrites only its
-- own row as it learns); the insight carries the union of every study's
-- support and contradiction and the confidence recounted from it, so a second
-- study of a data set adds to the first one's evidence instead of replacing it.
-- Existing insights keep their evidence as the row of the study that wrote them.
CREATE TABLE insight_evidence (
  insight_id   INTEGER NOT NULL REFERENCES insights(id) ON DELETE CASCADE,
  study_id     INTEGER REFERENCES studies(id) ON DELETE CASCADE,  -- NULL: not from a study
  rule         TEXT NOT NULL,
  support      TEXT NOT NULL,          -- JSON list of this study's supporting trial ids
  contradict   TEXT NOT NULL,          -- JSON list of this study's contradicting trial ids
  confidence   REAL NOT NULL,          -- from this study's evidence alone
  source       TEXT NOT NULL,
  updated_at   REAL NOT NULL,
  UNIQUE (insight_id, study_id)
);
CREATE INDEX insight_evidence_by_study ON insight_evidence(study_id);
INSERT INTO insight_evidence (insight_id, study_id, rule, support, contradict, confidence, source, updated_at)
  SELECT id, study_id, rule, support, contradict, confidence, source, updated_at FROM insights;

-- version 7: what a lane-epoch costs on each machine, measured once by a short probe
-- (search/probe.py), so a study under a budget in minutes prices its first batch
-- before it has trained anything. One row per machine, device and compute dtype;
-- a later probe of the same machine replaces its row.
CREATE TABLE machine_prices (
  id            INTEGER PRIMARY KEY,
  machine       TEXT NOT NULL,         -- host name and CPU model
  device        TEXT NOT NULL,         -- platform and device kind (cpu, TPU v5 lite, NVIDIA H100 ...)
  compute_dtype TEXT NOT NULL,         -- float32 | bfloat16: the matmuls the probe ran
  price         TEXT NOT NULL,         -- JSON search/cost.py Price
  probe         TEXT NOT NULL,         -- JSON: what the probe trained and measured
  probe_seconds REAL NOT NULL,         -- wall-clock of the probe
  created_at    REAL NOT NULL,
  UNIQUE (machine, device, compute_dtype)
);
