"""The garbage collector of a local-master JVM runstream starts: the throughput collector,
unless the JVM's options choose one already (a JVM given two refuses to start)."""

from __future__ import annotations

import pytest

from runstream.consumer.session import THROUGHPUT_GC, local_gc_option


def test_the_throughput_collector_by_default() -> None:
    assert local_gc_option({}) == THROUGHPUT_GC == "-XX:+UseParallelGC"
    assert local_gc_option({"JAVA_TOOL_OPTIONS": "-Xss4m -XX:+UseCompressedOops"}) == THROUGHPUT_GC


@pytest.mark.parametrize(
    "chosen",
    [
        {"JAVA_TOOL_OPTIONS": "-XX:+UseG1GC"},
        {"_JAVA_OPTIONS": "-Xss4m -XX:+UseZGC"},
        {"JDK_JAVA_OPTIONS": "-XX:+UseSerialGC"},
        {"PYSPARK_SUBMIT_ARGS": '--driver-java-options "-XX:+UseShenandoahGC" pyspark-shell'},
    ],
)
def test_a_collector_chosen_in_the_jvm_options_stands(chosen: dict[str, str]) -> None:
    assert local_gc_option(chosen) is None
