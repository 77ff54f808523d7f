# The consumer job's image: Python, a JDK for Spark (its javac builds runstream's local file
# system for Hadoop, see runstream.jvm.local_fs_jar), and the connector jars resolved at build.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# src/runstream/_schemas links to schemas/, which the wheel build follows
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY src ./src
RUN pip install --no-cache-dir '.[spark]' && RUNSTREAM_CACHE_DIR=/opt/runstream runstream jars
ENV RUNSTREAM_CACHE_DIR=/opt/runstream SPARK_LOCAL_IP=127.0.0.1
CMD ["runstream", "consume"]
