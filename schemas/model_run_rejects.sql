-- model_run_rejects: quarantine. Records that could not be decoded or validated, raw bytes
-- kept, with the reason and their Kafka coordinates. Nothing is dropped silently.
CREATE TABLE IF NOT EXISTS {name} (
  kafka_topic STRING NOT NULL,
  kafka_partition INT NOT NULL,
  kafka_offset BIGINT NOT NULL,
  kafka_timestamp TIMESTAMP,
  key BINARY,
  value BINARY,
  value_bytes INT,
  reason STRING NOT NULL,
  rejected_at TIMESTAMP NOT NULL
)
USING DELTA
COMMENT 'Quarantine for model-run records that could not be decoded or validated'
