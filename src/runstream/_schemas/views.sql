-- Dashboard views over model_runs (and the quarantine). Written for Databricks names; for
-- local path tables runstream.consumer.queries.create_views substitutes the table names and
-- makes them session TEMP views. Each statement ends with `;`.

-- Leaderboard: one row per commodity and model, best and typical accuracy, cost, production.
CREATE OR REPLACE VIEW commodity.experiments.model_leaderboard AS
SELECT
  commodity,
  model_name,
  model_type,
  COUNT(*) AS runs,
  MIN(mae_14day) AS best_mae_14day,
  AVG(mae_14day) AS avg_mae_14day,
  AVG(directional_accuracy) AS avg_directional_accuracy,
  AVG(CASE WHEN beats_baseline THEN 1.0 ELSE 0.0 END) AS share_beats_baseline,
  SUM(execution_time_seconds) / 3600 AS total_hours,
  SUM(cost_estimate_usd) AS total_cost_usd,
  MAX(run_timestamp) AS last_run,
  BOOL_OR(is_production) AS in_production
FROM commodity.experiments.model_runs
GROUP BY commodity, model_name, model_type;

-- Growth of experimentation: runs, compute hours and cost per day, commodity and model type.
CREATE OR REPLACE VIEW commodity.experiments.experiments_per_day AS
SELECT
  run_date,
  commodity,
  model_type,
  COUNT(*) AS runs,
  COUNT(DISTINCT model_name) AS unique_models,
  SUM(execution_time_seconds) / 3600 AS total_hours,
  SUM(cost_estimate_usd) AS total_cost_usd
FROM commodity.experiments.model_runs
GROUP BY run_date, commodity, model_type;

-- Model governance: what runs in production, every commodity.
CREATE OR REPLACE VIEW commodity.experiments.production_models AS
SELECT
  commodity,
  model_name,
  model_version,
  model_type,
  experiment_id,
  mae_14day,
  directional_accuracy,
  dm_pvalue,
  beats_baseline,
  run_timestamp,
  notes
FROM commodity.experiments.model_runs
WHERE is_production = TRUE;

-- Operations: quarantined records per day and reason (should stay empty).
CREATE OR REPLACE VIEW commodity.experiments.rejects_per_day AS
SELECT
  CAST(rejected_at AS DATE) AS rejected_date,
  kafka_topic,
  reason,
  COUNT(*) AS records
FROM commodity.experiments.model_run_rejects
GROUP BY CAST(rejected_at AS DATE), kafka_topic, reason;
