-- model_runs: one row per experiment_id, the newest state of each run.
-- The seed's columns with the seed's names and types, then bookkeeping columns prefixed `_rs_`.
-- The run's columns (the placeholder below) are filled in from the field table in
-- runstream/contract/fields.py, with their types and NOT NULLs; the CHECK constraints come from
-- the same table. `runstream schema` prints the statements as they run.
-- Partitioned by commodity and a date generated from run_timestamp: filters on run_timestamp
-- still prune, and there is one folder per commodity and day, not one per run.
-- The table name is a catalog name (commodity.experiments.model_runs) or delta.`/path`.
CREATE TABLE IF NOT EXISTS {name} (
  experiment_id STRING NOT NULL,
  {run_columns},
  run_date DATE GENERATED ALWAYS AS (CAST(run_timestamp AS DATE)),
  _rs_event_count BIGINT NOT NULL,
  _rs_last_event_id STRING NOT NULL,
  _rs_last_event_time TIMESTAMP NOT NULL,
  _rs_first_seen_at TIMESTAMP NOT NULL,
  _rs_last_seen_at TIMESTAMP NOT NULL
)
USING DELTA
PARTITIONED BY (commodity, run_date)
COMMENT 'Experiment tracking for all model runs - enables pruning while preserving history'
