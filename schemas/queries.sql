-- The seed's three queries, verbatim from experiment-tracking-design.md ("Usage Patterns"),
-- plus the production query. Each starts at a `-- name: <name>` line and ends with `;`.
-- runstream.consumer.queries substitutes only the names in `commodity.experiments` (the table
-- and the views of views.sql) and, when asked, the seed's literals 'Coffee' and LIMIT 5. Keep
-- the seed's text unchanged: a test compares it with the seed document.

-- name: best
-- Top 5 models by MAE for Coffee
SELECT
  model_name,
  model_version,
  mae_14day,
  directional_accuracy,
  execution_time_seconds,
  run_timestamp
FROM commodity.experiments.model_runs
WHERE commodity = 'Coffee'
  AND beats_baseline = TRUE
ORDER BY mae_14day ASC
LIMIT 5;

-- name: history
-- Show experimentation scale
SELECT
  model_type,
  COUNT(*) as total_experiments,
  COUNT(DISTINCT model_name) as unique_models,
  AVG(mae_14day) as avg_mae,
  MIN(mae_14day) as best_mae,
  SUM(execution_time_seconds) / 3600 as total_hours
FROM commodity.experiments.model_runs
WHERE commodity = 'Coffee'
GROUP BY model_type
ORDER BY total_experiments DESC;

-- name: prune
-- Models that should be removed from registry
SELECT
  model_name,
  COUNT(*) as num_runs,
  AVG(mae_14day) as avg_mae,
  AVG(execution_time_seconds) as avg_time,
  MAX(run_timestamp) as last_run
FROM commodity.experiments.model_runs
WHERE beats_baseline = FALSE
GROUP BY model_name
HAVING COUNT(*) >= 3  -- Consistently poor
ORDER BY avg_mae DESC;

-- name: production
-- What runs in production for Coffee (model governance), newest first: the view of the same
-- name in views.sql, for one commodity
SELECT *
FROM commodity.experiments.production_models
WHERE commodity = 'Coffee'
ORDER BY run_timestamp DESC, experiment_id;
