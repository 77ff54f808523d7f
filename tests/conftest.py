"""Tests are split by what they need: ``tests/unit`` (nothing), ``tests/broker`` (Kafka),
``tests/spark`` (Kafka and Spark). Their fixtures live in one plugin module, shared with the
benchmarks' helpers (``runstream.devtools.testkit``)."""

pytest_plugins = ("runstream.devtools.pytest_plugin",)
