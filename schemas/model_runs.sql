-- model_runs: one row per experiment_id, the newest state of each run.
-- The seed's columns with the seed's names and types, then `run_date`, then bookkeeping columns
-- prefixed `_rs_`: among them the fold state (which event set each column group, which events
-- were folded), so a batch combines new events with a row without re-reading the log
-- (consumer/projection.py).
-- The run's columns (the placeholder below) are filled in from the field table in
-- runstream/contract/fields.py, with their types and NOT NULLs; the CHECK constraints come from
-- the same table; a path table declares them in its properties below, so it is made in one
-- commit (a catalog table gets them from ALTER TABLE ADD CONSTRAINT). Statistics are kept for
-- the first column only: a bucket's files hold runs of every day, model and commodity, so
-- min/max of those columns prune nothing, and collecting them was about a tenth of the CPU of
-- a backfill's rows write. `runstream schema` prints the statements as they run.
-- Partitioned by a bucket of experiment_id ({buckets} buckets), the MERGE key: a micro-batch
-- that touches k runs searches at most k buckets, whatever the table's size. (By commodity and
-- day, a run's partition cannot be known from its id, and every MERGE searched every file.)
-- The table name is a catalog name (commodity.experiments.model_runs) or delta.`/path`.
CREATE TABLE IF NOT EXISTS {name} (
  experiment_id STRING NOT NULL,
  {run_columns},
  run_date DATE GENERATED ALWAYS AS (CAST(run_timestamp AS DATE)),
  _rs_event_count BIGINT NOT NULL,
  _rs_last_event_id STRING NOT NULL,
  _rs_last_event_time TIMESTAMP NOT NULL,
  _rs_first_seen_at TIMESTAMP NOT NULL,
  _rs_last_seen_at TIMESTAMP NOT NULL,
  _rs_run_from STRUCT<event_time: TIMESTAMP, event_id: STRING> NOT NULL,
  _rs_production_from STRUCT<event_time: TIMESTAMP, event_id: STRING>,
  _rs_notes_from STRUCT<event_time: TIMESTAMP, event_id: STRING>,
  _rs_event_ids ARRAY<STRING> NOT NULL,
  _rs_bucket BIGINT GENERATED ALWAYS AS ({bucket})
)
USING DELTA
PARTITIONED BY (_rs_bucket)
COMMENT 'Experiment tracking for all model runs - enables pruning while preserving history'
TBLPROPERTIES (
  {properties}
)
