"""The light half: validate a run, make it durable in the local spool, send it to Kafka.

Depends on kafka-python, fastavro and the standard library only; never on Spark.
"""
