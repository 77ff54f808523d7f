"""Development helpers: a real single-process Kafka broker and broker selection for tests."""
