"""The local JVM that ``spark_session`` starts has the heap ``local_driver_memory`` chose, and
the collector ``local_gc_option`` chose."""

from __future__ import annotations

from typing import Any

import pytest

from runstream.consumer.session import local_driver_memory, local_gc_option


def test_the_local_jvm_gets_the_chosen_heap(spark: Any) -> None:
    chosen = local_driver_memory()
    if chosen is None:
        pytest.skip("a heap was set in SPARK_DRIVER_MEMORY, PYSPARK_SUBMIT_ARGS or spark-defaults")
    assert spark.sparkContext.getConf().get("spark.driver.memory") == chosen
    # the JVM was started with it (its usable heap reads less: one survivor space is kept free)
    management = spark._jvm.java.lang.management.ManagementFactory
    assert f"-Xmx{chosen}" in list(management.getRuntimeMXBean().getInputArguments())


def test_the_local_jvm_collects_garbage_with_the_chosen_collector(spark: Any) -> None:
    if local_gc_option() is None:
        pytest.skip("a collector was chosen in the JVM's options")
    management = spark._jvm.java.lang.management.ManagementFactory
    beans = management.getGarbageCollectorMXBeans()
    names = {bean.getName() for bean in beans}
    assert names == {"PS Scavenge", "PS MarkSweep"}, names  # the Parallel collector's
