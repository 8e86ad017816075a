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
