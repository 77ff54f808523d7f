-- model_run_pending: the fold state of runs whose run_recorded event has not arrived yet (a
-- promotion or an annotation came first). Usually empty; a row moves into model_runs as soon as
-- its run is recorded. Derived from the log like model_runs (`runstream rebuild` recomputes it).
CREATE TABLE IF NOT EXISTS {name} (
  experiment_id STRING NOT NULL,
  is_production BOOLEAN,
  _rs_production_from STRUCT<event_time: TIMESTAMP, event_id: STRING>,
  notes STRING,
  _rs_notes_from STRUCT<event_time: TIMESTAMP, event_id: STRING>,
  _rs_event_ids ARRAY<STRING> NOT NULL,
  _rs_first_seen_at TIMESTAMP NOT NULL,
  _rs_last_seen_at TIMESTAMP NOT NULL,
  _rs_last_event_time TIMESTAMP NOT NULL,
  _rs_last_event_id STRING NOT NULL
)
USING DELTA
COMMENT 'Fold state of model runs whose run_recorded event has not arrived yet'
