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

-- The dashboard's panels (`runstream dashboard` reads these views; it restates no SQL).

-- Totals: runs, models, commodities, compute and cost, runs that beat the naive baseline.
CREATE OR REPLACE VIEW commodity.experiments.model_runs_summary AS
SELECT
  COUNT(*) AS runs,
  COUNT(DISTINCT model_name) AS models,
  COUNT(DISTINCT commodity) AS commodities,
  ROUND(COALESCE(SUM(execution_time_seconds), 0) / 3600, 2) AS compute_hours,
  ROUND(COALESCE(SUM(cost_estimate_usd), 0), 2) AS cost_usd,
  COALESCE(SUM(CASE WHEN beats_baseline THEN 1 ELSE 0 END), 0) AS beat_baseline
FROM commodity.experiments.model_runs;

-- Growth of experimentation: runs per week (weeks start on Monday) and commodity.
CREATE OR REPLACE VIEW commodity.experiments.runs_per_week AS
SELECT
  commodity,
  DATE_TRUNC('week', run_timestamp) AS week,
  COUNT(*) AS runs
FROM commodity.experiments.model_runs
GROUP BY commodity, DATE_TRUNC('week', run_timestamp);

-- Tracking improvements: each model's average 14-day MAE per week, per commodity.
CREATE OR REPLACE VIEW commodity.experiments.mae_per_week AS
SELECT
  commodity,
  model_name,
  model_type,
  DATE_TRUNC('week', run_timestamp) AS week,
  COUNT(*) AS runs,
  AVG(mae_14day) AS avg_mae_14day
FROM commodity.experiments.model_runs
WHERE mae_14day IS NOT NULL
GROUP BY commodity, model_name, model_type, DATE_TRUNC('week', run_timestamp);

-- Best models: the five lowest 14-day MAEs per commodity among runs that beat naive.
CREATE OR REPLACE VIEW commodity.experiments.best_models AS
SELECT commodity, model_name, model_version, mae_14day, directional_accuracy,
  execution_time_seconds, run_timestamp
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY commodity ORDER BY mae_14day, experiment_id) AS rank
  FROM commodity.experiments.model_runs
  WHERE beats_baseline = TRUE AND mae_14day IS NOT NULL
)
WHERE rank <= 5;

-- Experiment history per commodity and model type (the seed's "history" for every commodity;
-- averages stay within one commodity, whose prices share a scale).
CREATE OR REPLACE VIEW commodity.experiments.experiment_history AS
SELECT
  commodity,
  model_type,
  COUNT(*) AS total_experiments,
  COUNT(DISTINCT model_name) AS unique_models,
  ROUND(AVG(mae_14day), 3) AS avg_mae,
  MIN(mae_14day) AS best_mae,
  ROUND(SUM(execution_time_seconds) / 3600, 2) AS total_hours,
  ROUND(SUM(cost_estimate_usd), 2) AS total_cost_usd
FROM commodity.experiments.model_runs
GROUP BY commodity, model_type;

-- Pruning candidates: the seed's "prune" rule (3+ runs with beats_baseline = FALSE), per
-- commodity so averages do not mix price scales.
CREATE OR REPLACE VIEW commodity.experiments.pruning_candidates AS
SELECT
  commodity,
  model_name,
  COUNT(*) AS num_runs,
  ROUND(AVG(mae_14day), 3) AS avg_mae,
  ROUND(AVG(execution_time_seconds), 1) AS avg_time,
  MAX(run_timestamp) AS last_run
FROM commodity.experiments.model_runs
WHERE beats_baseline = FALSE
GROUP BY commodity, model_name
HAVING COUNT(*) >= 3;

-- Governance: what runs in production and since when. "Since" is the first promotion after
-- the run's last demotion (from the event log), or the run's own time when it was recorded
-- as production and never promoted.
CREATE OR REPLACE VIEW commodity.experiments.production_since AS
SELECT
  p.commodity,
  p.model_name,
  p.model_version,
  p.model_type,
  p.experiment_id,
  p.mae_14day,
  p.directional_accuracy,
  COALESCE(s.promoted_at, p.run_timestamp) AS in_production_since
FROM commodity.experiments.production_models AS p
LEFT JOIN (
  SELECT up.experiment_id, MIN(up.event_time) AS promoted_at
  FROM commodity.experiments.model_run_events AS up
  LEFT JOIN (
    SELECT experiment_id, MAX(event_time) AS demoted_at
    FROM commodity.experiments.model_run_events
    WHERE event_type = 'run_promoted' AND NOT promotion.is_production
    GROUP BY experiment_id
  ) AS down ON up.experiment_id = down.experiment_id
  WHERE up.event_type = 'run_promoted' AND up.promotion.is_production
    AND (down.demoted_at IS NULL OR up.event_time > down.demoted_at)
  GROUP BY up.experiment_id
) AS s ON p.experiment_id = s.experiment_id;
