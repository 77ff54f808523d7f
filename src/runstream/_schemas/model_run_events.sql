-- model_run_events: the append-only event log, one row per event_id. The truth: model_runs
-- can be rebuilt from it at any time (`runstream rebuild`). Kafka coordinates are the first
-- delivery's. Partitioned by the event's day so a rebuild or an audit can prune by time.
CREATE TABLE IF NOT EXISTS {name} (
  event_id STRING NOT NULL,
  event_type STRING NOT NULL,
  event_time TIMESTAMP NOT NULL,
  experiment_id STRING NOT NULL,
  source STRING NOT NULL,
  schema_version INT NOT NULL,
  producer STRUCT<host: STRING, pid: INT, library_version: STRING>,
  run STRUCT<{run_struct}>,
  promotion STRUCT<is_production: BOOLEAN>,
  annotation STRUCT<notes: STRING>,
  kafka_topic STRING NOT NULL,
  kafka_partition INT NOT NULL,
  kafka_offset BIGINT NOT NULL,
  kafka_timestamp TIMESTAMP NOT NULL,
  event_date DATE GENERATED ALWAYS AS (CAST(event_time AS DATE))
)
USING DELTA
PARTITIONED BY (event_date)
COMMENT 'Append-only log of every model-run event; model_runs is its projection'
