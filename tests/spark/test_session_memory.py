"""The local JVM that ``spark_session`` starts has the heap ``local_driver_memory`` chose."""

from __future__ import annotations

from typing import Any

import pytest

from runstream.consumer.session import local_driver_memory


def test_the_local_jvm_gets_the_chosen_heap(spark: Any) -> None:
    chosen = local_driver_memory()
    if chosen is None:
        pytest.skip("a heap was set in SPARK_DRIVER_MEMORY, PYSPARK_SUBMIT_ARGS or spark-defaults")
    assert spark.sparkContext.getConf().get("spark.driver.memory") == chosen
    # the JVM reports a little less than -Xmx (one survivor space), far more than Spark's 1 GiB
    heap_mib = spark._jvm.java.lang.Runtime.getRuntime().maxMemory() // 2**20
    assert heap_mib >= 0.9 * int(chosen.removesuffix("m")), (heap_mib, chosen)
