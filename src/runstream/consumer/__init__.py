"""The Spark half: the streaming job that keeps the model_runs Delta table.

Needs the ``spark`` extra (pyspark, delta-spark). Nothing here is imported by ``runstream``.
"""
