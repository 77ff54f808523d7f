-- model_runs: one row per experiment_id, the newest state of each run.
-- The seed's columns with the seed's names and types, then bookkeeping columns prefixed `_rs_`.
-- Partitioned by commodity and a date generated from run_timestamp: filters on run_timestamp
-- still prune, and there is one folder per commodity and day, not one per run.
-- {name} is a catalog name (commodity.experiments.model_runs) or delta.`/path`.
CREATE TABLE IF NOT EXISTS {name} (
  experiment_id STRING NOT NULL,
  model_name STRING NOT NULL,
  model_version STRING NOT NULL,
  run_timestamp TIMESTAMP NOT NULL,
  model_type STRING NOT NULL,
  hyperparameters MAP<STRING, STRING>,
  feature_config MAP<STRING, BOOLEAN>,
  data_version STRING,
  training_start_date DATE NOT NULL,
  training_end_date DATE NOT NULL,
  forecast_horizon_days INT NOT NULL,
  commodity STRING NOT NULL,
  mae_1day DOUBLE,
  mae_7day DOUBLE,
  mae_14day DOUBLE,
  rmse_14day DOUBLE,
  mape_14day DOUBLE,
  directional_accuracy DOUBLE,
  dm_test_vs_naive DOUBLE,
  dm_pvalue DOUBLE,
  beats_baseline BOOLEAN,
  execution_time_seconds DOUBLE,
  hardware_config STRING,
  databricks_cluster_id STRING,
  cost_estimate_usd DOUBLE,
  model_path STRING,
  dashboard_url STRING,
  run_by STRING,
  notes STRING,
  is_production BOOLEAN NOT NULL,
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
