"""The Spark half: the streaming job that keeps the model_runs Delta table.

Needs the ``spark`` extra (pyspark, delta-spark). Nothing here is imported by ``runstream``.

- ``job``: the streaming job (``start``, ``run_job``, ``process_batch``);
- ``decode``: Kafka records -> valid events and quarantined rejects;
- ``projection``: the fold from events to rows, and the ordering rule;
- ``tables``: where the three Delta tables live and their DDL;
- ``rebuild``: recompute model_runs from the event log alone;
- ``maintenance``: OPTIMIZE and VACUUM with safe retention;
- ``queries``: the seed's queries, the production query and the dashboard views;
- ``progress``: what each micro-batch did (records, quarantined, rows, lag) and the summary;
- ``session``: the SparkSession factory.
"""
