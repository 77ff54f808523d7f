"""The ``runstream`` command: a thin layer over the library (argparse, stdlib only).

Spark-side commands import Spark only when they run, so ``runstream spool status`` works on a
machine that installed the light producer alone.

A user's mistake never shows a Python traceback: every error the library raises on purpose
(``runstream.errors``) becomes one line on stderr and an exit code; ``-v`` adds the details.

Exit codes:

=====  ===========================================================================
0      done
1      done, but not everything went through (events left in the spool, a broker that
       does not answer ``kafka status``)
2      bad usage or input: an unknown option, a missing or malformed file, an invalid
       run (for ``backfill``: some runs invalid, the others sent), a bad setting
3      something the command needs is not there: an unreachable broker, a broker that
       refuses the credentials or the TLS handshake, a topic or table that does not
       exist yet, Java, Maven or Spark missing, an unusable spool
4      an internal error (a bug): please report it with the output of ``-v``
130    interrupted (Ctrl-C)
=====  ===========================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from runstream import environment_variables as env
from runstream.errors import (
    BrokerError,
    BrokerUnreachableError,
    ConfigError,
    InputError,
    KafkaAuthError,
    RetentionError,
    RunstreamError,
    SchemaError,
    SetupError,
    SpoolError,
    TableNotFoundError,
    TopicMissingError,
    ValidationError,
)
from runstream.output import print_rows

Handler = Callable[[argparse.Namespace], int]

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_MISSING, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
# Most specific first: the first class an error is an instance of decides its exit code.
EXIT_CODES: tuple[tuple[type[RunstreamError], int], ...] = (
    (ValidationError, EXIT_USAGE),
    (SchemaError, EXIT_USAGE),
    (InputError, EXIT_USAGE),
    (ConfigError, EXIT_USAGE),
    (RetentionError, EXIT_USAGE),
    (KafkaAuthError, EXIT_MISSING),
    (BrokerUnreachableError, EXIT_MISSING),
    (TableNotFoundError, EXIT_MISSING),
    (TopicMissingError, EXIT_MISSING),
    (SetupError, EXIT_MISSING),
    (BrokerError, EXIT_MISSING),
    (SpoolError, EXIT_MISSING),
)


def exit_code(error: RunstreamError) -> int:
    return next((code for kind, code in EXIT_CODES if isinstance(error, kind)), EXIT_USAGE)


def one_line(error: BaseException) -> str:
    """An error as one line: a ValidationError's problems joined, other text unwrapped."""
    if isinstance(error, ValidationError):
        noun = "problem" if len(error.problems) == 1 else "problems"
        return f"run rejected ({len(error.problems)} {noun}): " + "; ".join(error.problems)
    return " ".join(part.strip() for part in str(error).splitlines() if part.strip())


def _print(obj: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, default=str))
    else:
        width = max((len(key) for key in obj), default=0)
        for key, value in obj.items():
            print(f"{key:>{width}}: {value}")


def _format(args: argparse.Namespace) -> str:
    """The output format a query verb was asked for (``--json`` is ``--format json``)."""
    return "json" if args.json else str(args.format)


def _jvm_log(args: argparse.Namespace) -> Path | None:
    """Where the JVM's own output goes: the terminal with ``-v``, else a log file."""
    from runstream.consumer.session import default_jvm_log

    return None if args.verbose else default_jvm_log()


def _spark(args: argparse.Namespace, app: str) -> Any:
    from runstream.consumer.session import spark_session

    return spark_session(app, jvm_log=_jvm_log(args))


# -- kafka ----------------------------------------------------------------------------------
def _broker(args: argparse.Namespace) -> Any:
    from runstream.devtools.kafka_broker import LocalBroker

    state = Path(args.state_dir).expanduser() if args.state_dir else env.home() / "kafka"
    return LocalBroker.in_folder(state, port=args.port)


def cmd_kafka_up(args: argparse.Namespace) -> int:
    broker = _broker(args)
    started = broker.up()
    facts = {"started": started, "pid": broker.pid(), "bootstrap": broker.bootstrap,
             "log": str(broker.log_file)}  # fmt: skip
    if args.json:
        _print(facts, True)
    elif started:
        print(f"Kafka is up at {broker.bootstrap} (pid {broker.pid()}); log: {broker.log_file}")
    else:
        print(f"already running (pid {broker.pid()}) at {broker.bootstrap}; not starting another")
    return EXIT_OK


def cmd_kafka_status(args: argparse.Namespace) -> int:
    from runstream.devtools.kafka_broker import metadata_round_trip

    broker = _broker(args)
    pid = broker.pid()
    answering = pid is not None and metadata_round_trip(broker.bootstrap)
    _print(
        {"running": pid is not None, "pid": pid, "bootstrap": broker.bootstrap,
         "answering": answering, "state_dir": str(broker.state_dir)},
        args.json,
    )  # fmt: skip
    return EXIT_OK if answering else EXIT_PARTIAL


def cmd_kafka_down(args: argparse.Namespace) -> int:
    broker = _broker(args)
    stopped = broker.down()
    if args.json:
        _print({"stopped": stopped, "bootstrap": broker.bootstrap}, True)
    else:
        print(f"stopped Kafka at {broker.bootstrap}" if stopped else "not running")
    return EXIT_OK


# -- spool ----------------------------------------------------------------------------------
def _emitter(args: argparse.Namespace) -> Any:
    from runstream.producer.emitter import Emitter

    return Emitter(
        bootstrap_servers=args.bootstrap_servers, topic=args.topic, spool_dir=args.spool_dir,
        kafka_properties=args.kafka_properties,
    )  # fmt: skip


def cmd_spool_status(args: argparse.Namespace) -> int:
    status = _emitter(args).spool.status()
    _print(
        {"path": str(status.path), "pending": status.pending, "bytes": status.bytes,
         "oldest_age_s": None if status.oldest_age_s is None else round(status.oldest_age_s, 1),
         "corrupt": status.corrupt, "stray": status.stray},
        args.json,
    )  # fmt: skip
    return 0


def cmd_spool_list(args: argparse.Namespace) -> int:
    from runstream import contract
    from runstream.producer.spool import ReadOutcome

    spool = _emitter(args).spool
    for entry in spool.pending(limit=args.limit):
        record = spool.read_entry(entry)
        if record is ReadOutcome.QUARANTINED:
            print(json.dumps({"file": entry.path.name, "quarantined": "fails its check; "
                              f"moved to {spool.root / 'corrupt'}"}))  # fmt: skip
            continue
        if isinstance(record, ReadOutcome):  # sent meanwhile, or unreadable (logged)
            continue
        try:
            event = contract.decode(record[1])
        except SchemaError as exc:  # e.g. written by a newer runstream; still sendable
            print(json.dumps({"file": entry.path.name, "undecodable": str(exc)}))
            continue
        run = event.get("run") or {}
        print(json.dumps({
            "event_id": event["event_id"], "event_type": event["event_type"],
            "experiment_id": event["experiment_id"], "event_time": event["event_time"],
            "model_name": run.get("model_name"), "file": entry.path.name,
        }, default=str))  # fmt: skip
    return 0


class _DropRefusal(logging.Filter):
    """Drops log lines that repeat the sender's connection refusal: the command ends with that
    refusal as its one error line, so the same text logged on the way is noise."""

    def __init__(self, sender: Any) -> None:
        super().__init__()
        self.sender = sender

    def filter(self, record: logging.LogRecord) -> bool:
        refused = self.sender.connect_error
        return refused is None or refused not in record.getMessage()


@contextlib.contextmanager
def _one_error_line(args: argparse.Namespace, sender: Any) -> Iterator[None]:
    if args.verbose:
        yield
        return
    handlers = logging.getLogger().handlers
    drop = _DropRefusal(sender)
    for handler in handlers:
        handler.addFilter(drop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(drop)


def cmd_spool_flush(args: argparse.Namespace) -> int:
    """Send the spool now and print one line of what happened.

    Exit status: 0 nothing left; 1 events left when the timeout ran out (the log says why);
    3 no broker answered (it stopped at once), or the spool cannot be changed (the message
    names the folder and the fix).
    """
    from runstream.producer.sender import Sender

    emitter = _emitter(args)
    sender = Sender(
        emitter.spool, topic=emitter.topic, bootstrap_servers=emitter.bootstrap_servers,
        kafka_config=emitter._sender.kafka_config, client=emitter.kafka,
    )  # fmt: skip
    try:
        with _one_error_line(args, sender):
            result = sender.flush(args.timeout)
    finally:
        sender.stop()
    root = emitter.spool.root
    if result.unreachable and sender.connect_error is not None:
        raise KafkaAuthError(
            f"{sender.connect_error}; sent {result.sent}, {result.left} event(s) stay in {root}"
        )
    done = [f"sent {result.sent} event(s)"]
    if result.quarantined:
        done.append(f"quarantined {result.quarantined} corrupt file(s)")
    if result.unreachable:
        line = (
            f"Kafka at {emitter.bootstrap_servers} is unreachable (RUNSTREAM_BOOTSTRAP_SERVERS "
            f"or --bootstrap-servers); {result.left} event(s) stay in {root} and will be sent "
            "later"
        )
        if result.sent or result.quarantined:
            line = f"{', '.join(done)}, then {line}"
        code = EXIT_MISSING
    else:
        line = f"{', '.join(done)}; {result.left} left in {root}"
        if result.spool_error is None and result.left:
            line += f" (not all acknowledged within {args.timeout:g} s; -v shows why)"
        code = (
            EXIT_MISSING if result.spool_error is not None
            else EXIT_PARTIAL if result.left else EXIT_OK
        )  # fmt: skip
    if args.json:
        print(json.dumps({
            "sent": result.sent, "quarantined": result.quarantined, "left": result.left,
            "unreachable": result.unreachable, "path": str(root),
            "spool_error": None if result.spool_error is None else str(result.spool_error),
        }))  # fmt: skip
    else:
        print(line)
    if result.spool_error is not None:
        print(f"runstream: {result.spool_error}", file=sys.stderr)
    return code


# -- emit -----------------------------------------------------------------------------------
def cmd_emit(args: argparse.Namespace) -> int:
    """Validate every run of the file first (nothing is written if one is invalid), check that
    the spool has room for all of them, then write them in batches of up to 1,000 runs (one
    spool file and one disk sync each) and wait a bounded time for Kafka to acknowledge."""
    from runstream.run_files import read_runs

    chunk = 1000  # runs per spool file: big files need no single giant segment
    emitter = _emitter(args)
    runs = list(read_runs(args.file))
    batch = emitter._prepare_batch(runs, lambda index: f"run {index + 1}")
    emitter.spool.check_room(len(batch))
    recorded = 0
    for start in range(0, len(batch), chunk):
        try:
            receipts = emitter._spool_batch(batch[start : start + chunk])
        except SpoolError as exc:
            if not recorded:
                raise
            # only another process filling the spool meanwhile, or a failing disk, gets here
            raise type(exc)(
                f"{exc}; runs 1 to {recorded} of {len(batch)} were recorded (printed above) "
                f"and will be sent; runs {recorded + 1} to {len(batch)} were not"
            ) from exc
        recorded += len(receipts)
        for receipt in receipts:
            if args.json:
                print(json.dumps({"experiment_id": receipt.experiment_id,
                                  "event_id": receipt.event_id}))  # fmt: skip
            else:
                print(f"recorded run {receipt.experiment_id} (event {receipt.event_id})")
    with _one_error_line(args, emitter._sender):
        left = emitter.close(args.timeout)  # logs one warning line if runs wait in the spool
    refused = emitter._sender.connect_error
    if left and refused is not None:
        # Unlike a broker that is down, a refusal does not pass by waiting: say so and fail.
        raise KafkaAuthError(
            f"{refused}; {left} run(s) are safe in {emitter.spool.root} and will be sent once "
            "the settings are fixed (`runstream spool flush`)"
        )
    return EXIT_OK


# -- consumer -------------------------------------------------------------------------------
def cmd_consume(args: argparse.Namespace) -> int:
    """Run the job, printing one line per batch and a summary; 130 after Ctrl-C.

    Unless ``-v``, the JVM's own output goes to ``$RUNSTREAM_HOME/logs/spark.log``.
    """
    from runstream.consumer.job import JobConfig, run_job
    from runstream.consumer.session import default_jvm_log

    config = JobConfig.from_env(
        bootstrap_servers=args.bootstrap_servers, lake=args.lake, table=args.table,
        checkpoint=args.checkpoint, max_offsets_per_trigger=args.max_offsets_per_trigger,
        kafka_properties=args.kafka_properties,
    )  # fmt: skip
    if config.kafka_client is not None:
        from runstream.kafka_client import check_connection

        # before the JVM starts: an unreachable broker, wrong credentials or TLS settings are
        # one line in seconds (the job checks again before its query starts)
        check_connection(config.kafka_client)

    def show(item: Any) -> None:  # a BatchReport or the JobSummary
        print(json.dumps(item.as_dict()) if args.json else item.line(), flush=True)

    try:
        summary = run_job(
            config, once=args.once, trigger_seconds=args.trigger_seconds, on_batch=show,
            jvm_log=None if args.verbose else default_jvm_log(),
        )  # fmt: skip
    except KeyboardInterrupt:  # while Spark started, or a second Ctrl-C
        print("runstream: interrupted", file=sys.stderr)
        return 130
    show(summary)
    return 130 if summary.interrupted else 0


def _tables(args: argparse.Namespace) -> Any:
    from runstream.consumer.job import JobConfig

    return JobConfig.from_env(lake=args.lake, table=args.table).tables


def _engine(args: argparse.Namespace) -> Any:
    """The engine a query verb runs on, pinned to ``--as-of`` when given: light (delta-rs, no
    JVM) for path tables when deltalake is installed, else Spark (``--engine`` decides)."""
    from runstream.consumer.tables import require_runs_table
    from runstream.engines import LightEngine, SparkEngine, resolve_as_of

    tables = _tables(args)
    require_runs_table(tables)
    engine_name = args.engine
    if engine_name == "auto":
        light = tables.lake is not None and LightEngine.available()
        engine_name = "light" if light else "spark"
    engine: Any
    if engine_name == "light":
        engine = LightEngine(tables)
    else:
        spark = _spark(args, f"runstream-{args.command}")
        require_runs_table(tables, spark)
        engine = SparkEngine(spark, tables)
    return engine.pinned(resolve_as_of(engine, getattr(args, "as_of", None)))


def cmd_query(args: argparse.Namespace) -> int:
    from runstream.engines import named_query

    engine = _engine(args)
    rows = named_query(engine, args.name, commodity=args.commodity, limit=args.limit)
    print_rows(rows, _format(args))
    return EXIT_OK


def cmd_versions(args: argparse.Namespace) -> int:
    from runstream.engines import versions

    print_rows(versions(_engine(args)), _format(args))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from runstream.engines import run_story

    story = run_story(_engine(args), args.experiment_id)
    if story["row"] is None and not story["events"] and not story["rejects"]:
        raise InputError(
            f"no run {args.experiment_id} in model_runs, its event log or the quarantine; "
            "check the id (`runstream query ... --json` prints ids)"
        )
    if args.json:
        print(json.dumps(story, default=str))
        return EXIT_OK
    print(f"run {args.experiment_id}")
    if story["row"] is None:
        print("  no row in model_runs (only promotions or annotations so far)")
    else:
        _print({k: v for k, v in story["row"].items() if v is not None}, False)
    print(f"\n{len(story['events'])} event(s), oldest first:")
    print_rows(story["events"], False)
    if story["rejects"]:
        print(f"\n{len(story['rejects'])} quarantined record(s) with this key:")
        print_rows(story["rejects"], False)
    return EXIT_OK


def cmd_export_mlflow(args: argparse.Namespace) -> int:
    from runstream.mlflow_bridge import export

    result = export(_engine(args), args.tracking_uri)
    facts = {"created": result.created, "updated": result.updated,
             "unchanged": result.unchanged}  # fmt: skip
    if args.json:
        _print(facts, True)
    else:
        print(
            f"MLflow: {result.created} run(s) created, {result.updated} updated, "
            f"{result.unchanged} unchanged"
        )
    return EXIT_OK


def cmd_backfill(args: argparse.Namespace) -> int:
    """Stream a file of runs to the replay topic (or only validate it, ``--dry-run``), then
    print a summary: sent, already sent (skipped), invalid with where and why.

    Exit status: 0 every run went (now or before); 2 some runs are invalid or were refused
    (the others were sent), or the file cannot be read; 3 Kafka is unreachable or refuses
    the client (nothing was read), or stopped acknowledging (what it acknowledged is skipped
    next time).
    """
    import time

    from runstream.backfill import backfill
    from runstream.backfill_sources import open_source, parse_mapping

    if args.list_invalid < 0:
        raise InputError(f"--list-invalid must be 0 or more, got {args.list_invalid}")
    source = open_source(args.file, args.input_format, parse_mapping(args.map))
    started = time.monotonic()
    bar = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        in_bytes = source.unit == "B"
        bar = tqdm(
            total=source.total, unit=source.unit, unit_scale=in_bytes, unit_divisor=1024,
            desc=Path(source.name).name, file=sys.stderr, leave=False, dynamic_ncols=True,
        )  # fmt: skip

    def progress(result: Any) -> None:
        assert bar is not None
        bar.update(source.position() - bar.n)
        if result.read % 200 == 1:
            done = "valid" if result.dry_run else "sent"
            bar.set_postfix_str(
                f"{done} {result.sent + result.to_send}, skipped {result.skipped}, "
                f"invalid {result.invalid}",
                refresh=False,
            )

    try:
        result = backfill(
            source.rows(), bootstrap_servers=args.bootstrap_servers, topic=args.topic,
            kafka_properties=args.kafka_properties, dry_run=args.dry_run,
            ledger=source.ledger_key, resend=args.resend, max_listed=args.list_invalid,
            progress=progress if bar is not None else None,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
        source.close()
    result.notes.extend(source.notes)
    seconds = round(time.monotonic() - started, 1)
    for listed, total, what in (
        (result.invalid_rows, result.invalid, "invalid"),
        (result.failed_rows, result.failed, "not sent"),
    ):
        for problem in listed:
            print(f"runstream: {source.name} {problem.where}: {problem.reason}", file=sys.stderr)
        if total > len(listed):
            print(
                f"runstream: {total - len(listed)} more {what} run(s) not listed "
                f"({total} in all; --list-invalid N lists more)",
                file=sys.stderr,
            )
    for note in result.notes:
        print(f"runstream: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"file": source.name, "format": source.format, **result.as_dict(),
                          "seconds": seconds}))  # fmt: skip
        return EXIT_OK if result.ok else EXIT_USAGE
    if result.dry_run:
        line = (
            f"{source.name} (dry run, nothing sent): {result.to_send} run(s) to send, "
            f"{result.skipped} already sent (skipped), {result.invalid} invalid"
        )
    else:
        line = (
            f"{source.name}: {result.sent} run(s) sent to {result.topic}, {result.skipped} "
            f"already sent (skipped), {result.invalid} invalid"
        )
        if result.failed:
            line += f", {result.failed} not sent (too large)"
    line += f"; {result.read} read in {seconds:g} s"
    if not result.ok:
        line += (
            "; fix the runs listed on stderr and run it again (what was sent is skipped)"
            if not result.dry_run
            else "; fix the runs listed on stderr"
        )
    print(line)
    return EXIT_OK if result.ok else EXIT_USAGE


# -- topics ---------------------------------------------------------------------------------
def _topic_names(args: argparse.Namespace) -> list[str]:
    if args.topic:
        return list(dict.fromkeys(args.topic))
    return [env.RUNSTREAM_TOPIC.get(), env.RUNSTREAM_REPLAY_TOPIC.get()]


def cmd_topics_create(args: argparse.Namespace) -> int:
    """Create the job's topics (or ``--topic``) that do not exist; existing ones are left as
    they are and listed. The replication factor defaults to 3, or the broker count when the
    cluster has fewer brokers."""
    from runstream import kafka_client
    from runstream.consumer.topics import create_topics, describe_topics

    kafka = kafka_client.load(args.bootstrap_servers, properties_file=args.kafka_properties)
    names = _topic_names(args)
    if args.partitions < 1:
        raise ConfigError(f"--partitions must be at least 1, got {args.partitions}")
    _, brokers = describe_topics(kafka, [])
    factor = args.replication_factor or min(3, max(1, brokers))
    if factor > brokers:
        raise ConfigError(
            f"--replication-factor {factor} needs at least {factor} brokers; {kafka.describe()} "
            f"has {brokers}; give --replication-factor {brokers} or fewer"
        )
    config = {"retention.ms": str(args.retention_ms)}
    if factor > 1:
        config["min.insync.replicas"] = str(min(2, factor))
    created = set(create_topics(kafka, names, args.partitions, config, factor))
    infos, _ = describe_topics(kafka, names)
    for info in infos:
        row = {
            "topic": info.name,
            "created": info.name in created,
            "partitions": info.partitions,
            "replication_factor": info.replication_factor,
        }
        if args.json:
            print(json.dumps(row))
        else:
            state = "created" if row["created"] else "exists, left as it is"
            print(f"{info.name}: {state} ({info.partitions} partition(s), replication factor "
                  f"{info.replication_factor})")  # fmt: skip
    return EXIT_OK


def cmd_topics_list(args: argparse.Namespace) -> int:
    from runstream import kafka_client
    from runstream.consumer.topics import describe_topics

    kafka = kafka_client.load(args.bootstrap_servers, properties_file=args.kafka_properties)
    infos, brokers = describe_topics(kafka, args.topic or None)
    rows = [{"topic": i.name, "partitions": i.partitions,
             "replication_factor": i.replication_factor} for i in infos]  # fmt: skip
    if not args.json:
        print(f"{kafka.describe()}: {brokers} broker(s)")
    print_rows(rows, args.json)
    return EXIT_OK


def cmd_rebuild(args: argparse.Namespace) -> int:
    from runstream.consumer.rebuild import rebuild
    from runstream.consumer.tables import require_runs_table

    tables = _tables(args)
    require_runs_table(tables)
    rows = rebuild(_spark(args, "runstream-rebuild"), tables)
    if args.json:
        _print({"runs": rows, "table": tables.runs, "log": tables.events}, True)
    else:
        print(f"rebuilt {tables.runs} from {tables.events}: {rows} run(s)")
    return EXIT_OK


def cmd_maintain(args: argparse.Namespace) -> int:
    from runstream.consumer.maintenance import maintain
    from runstream.consumer.tables import require_runs_table

    tables = _tables(args)
    require_runs_table(tables)
    report = maintain(_spark(args, "runstream-maintain"), tables, vacuum_hours=args.vacuum_hours)
    print(json.dumps(report, indent=None if args.json else 2, default=str))
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    from runstream.dashboard import write_dashboard

    engine = _engine(args)
    path = write_dashboard(engine, engine.tables.runs, args.output)
    if args.json:
        _print({"path": str(path.absolute())}, True)
    else:
        print(f"wrote {path}", flush=True)
    if args.serve is None:
        return EXIT_OK
    from runstream.dashboard.serve import serve

    try:
        serve(path, args.serve, announce=lambda url: print(f"serving {url} (Ctrl-C stops)"))
    except KeyboardInterrupt:
        return 130
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from runstream.consumer.tables import ddl

    for statement in ddl(_tables(args)):
        print(statement.strip() + ";\n")
    return EXIT_OK


def cmd_jars(args: argparse.Namespace) -> int:
    from runstream import jvm

    found = {name: jvm.resolve(name) for name in (jvm.KAFKA_BROKER, jvm.SPARK_CONNECTORS)}
    local_fs = jvm.local_fs_jar()  # compiled once here, not at a job's first start
    found[jvm.LOCAL_FS] = [local_fs] if local_fs is not None else []
    for name, jars in found.items():
        if args.json:
            _print({"set": name, "jars": len(jars), "folder": str(jvm.jar_dir(name))}, True)
        elif jars or name != jvm.LOCAL_FS:
            print(f"{name}: {len(jars)} jars in {jvm.jar_dir(name)}")
        else:
            print(f"{name}: not built (no javac on PATH): Spark writes local files through "
                  "Hadoop's own file system, which is slower; a JDK 17 adds javac")  # fmt: skip
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from runstream.demo import run_demo

    if args.windows < 0:
        raise InputError(f"--windows must be 0 or more, got {args.windows}")
    return run_demo(
        port=args.port, keep_broker=args.keep_broker, jvm_log=_jvm_log(args), windows=args.windows
    )


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _from(var: env.EnvVar, fallback: str | None = None) -> str:
    """Help text for an option backed by a setting: where its default comes from."""
    default = fallback if fallback is not None else var.default
    return f"default: ${var.name}, else {default}" if default else f"default: ${var.name}"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="runstream",
        description="Event-sourced experiment tracking: emit runs, send them, build model_runs.",
        epilog="Exit codes: 0 done; 1 done, not everything went through; 2 bad usage or input; "
        "3 something needed is missing (broker, table, Java); 4 internal error; 130 interrupted.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="show details: log lines, the JVM's own output, tracebacks (-vv: debug)",
    )  # fmt: skip
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def json_opt(p: argparse.ArgumentParser, what: str = "one JSON object per line") -> None:
        p.add_argument("--json", action="store_true", help=f"print {what} instead of text")

    kafka = sub.add_parser("kafka", help="a local Kafka broker for development")
    kafka_sub = kafka.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, fn, text in (
        ("up", cmd_kafka_up, "start it (no-op if it runs)"),
        ("status", cmd_kafka_status, "is it running and answering (exit 1 if not)"),
        ("down", cmd_kafka_down, "stop it"),
    ):
        p = kafka_sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--port", type=int,
            help="listener port (default: the port of the last `kafka up` in the state folder, "
            "else 9092; the controller uses the next one)",
        )  # fmt: skip
        p.add_argument("--state-dir", help="broker state folder (default: $RUNSTREAM_HOME/kafka)")
        json_opt(p, "one JSON object")
        p.set_defaults(func=fn)

    def kafka_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--bootstrap-servers",
            help=_from(
                env.RUNSTREAM_BOOTSTRAP_SERVERS,
                "bootstrap.servers of the properties file, else 127.0.0.1:9092",
            ),
        )
        p.add_argument(
            "--kafka-properties", metavar="FILE",
            help="Kafka client properties file (security.protocol, sasl.*, ssl.*; "
            "${env:NAME} reads a variable) (default: $RUNSTREAM_KAFKA_PROPERTIES, else none: "
            "plaintext)",
        )  # fmt: skip

    def producer_opts(p: argparse.ArgumentParser) -> None:
        kafka_opts(p)
        p.add_argument("--topic", help=_from(env.RUNSTREAM_TOPIC))
        p.add_argument("--spool-dir", help=_from(env.RUNSTREAM_SPOOL_DIR, "$RUNSTREAM_HOME/spool"))
        json_opt(p)

    spool = sub.add_parser("spool", help="the local durable spool")
    spool_sub = spool.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = spool_sub.add_parser("status", help="pending count, bytes, oldest age")
    producer_opts(p)
    p.set_defaults(func=cmd_spool_status)
    p = spool_sub.add_parser("list", help="pending events, oldest first, one JSON per line")
    producer_opts(p)
    p.add_argument("--limit", type=int, default=100, help="most events listed (default: 100)")
    p.set_defaults(func=cmd_spool_list)
    p = spool_sub.add_parser("flush", help="send pending events now")
    producer_opts(p)
    p.add_argument(
        "--timeout", type=float, default=60.0,
        help="seconds to keep sending while a broker answers (default: 60)",
    )  # fmt: skip
    p.set_defaults(func=cmd_spool_flush)

    p = sub.add_parser(
        "emit", help="emit runs from a JSON file (object, array or JSON Lines)",
        description="Emit the runs of a JSON file (object, array or JSON Lines). Every run is "
        "validated, and the spool's room checked for all of them, before any is written: one "
        "invalid run (listed as `run N`) or a full spool writes nothing. Runs are written in "
        "batches of up to 1,000 (one spool file and one disk sync each).",
    )  # fmt: skip
    producer_opts(p)
    p.add_argument("file", help="the file of runs; - for stdin")
    p.add_argument(
        "--timeout", type=float, default=30.0,
        help="seconds to wait for Kafka to acknowledge before leaving the rest to the spool "
        "(default: 30)",
    )  # fmt: skip
    p.set_defaults(func=cmd_emit)

    def table_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--lake", help=_from(env.RUNSTREAM_LAKE, "$RUNSTREAM_HOME/lake"))
        p.add_argument(
            "--table",
            help="catalog name of model_runs instead of path tables "
            "(default: $RUNSTREAM_TABLE, else path tables under the lake)",
        )

    p = sub.add_parser("consume", help="the streaming job: topics -> model_runs")
    table_opts(p)
    kafka_opts(p)
    p.add_argument(
        "--checkpoint", help="the job's checkpoint folder (default: <lake>/_checkpoints/consume)"
    )
    p.add_argument("--once", action="store_true", help="process what is there, then stop")
    p.add_argument(
        "--trigger-seconds", type=float, default=1.0,
        help="seconds between micro-batch starts when not --once; an idle trigger only asks "
        "Kafka for new offsets, and a batch that runs longer is followed at once (default: 1)",
    )  # fmt: skip
    p.add_argument(
        "--max-offsets-per-trigger", type=int,
        help="most Kafka records per micro-batch (default: no limit)",
    )  # fmt: skip
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per line (each batch, then the summary) instead of text",
    )
    p.set_defaults(func=cmd_consume)

    def format_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--format", choices=["table", "json", "csv"], default="table",
            help="table: fits a 100-column terminal; json: one object per row; csv: a header "
            "row, then the rows (default: table)",
        )  # fmt: skip
        p.add_argument("--json", action="store_true", help="the same as --format json")

    def engine_opts(p: argparse.ArgumentParser, as_of: bool = True) -> None:
        table_opts(p)
        p.add_argument(
            "--engine", choices=["auto", "light", "spark"], default="auto",
            help="light: delta-rs, no JVM (the `query` extra); spark: a SparkSession (default: "
            "auto, light for path tables when deltalake is installed, else spark)",
        )  # fmt: skip
        if as_of:
            p.add_argument(
                "--as-of",
                help="read model_runs as it stood at a version (12), a UTC time "
                "(2025-01-06T09:00:00) or when a run last changed (run:EXPERIMENT_ID) "
                "(default: now)",
            )

    p = sub.add_parser("query", help="the seed's queries against model_runs")
    engine_opts(p)
    p.add_argument(
        "name", choices=["best", "history", "prune", "production", "all"],
        help="best: top models by 14-day MAE beating naive; history: experimentation by model "
        "type; prune: models that keep losing to naive; production: what runs in production",
    )  # fmt: skip
    p.add_argument("--commodity", default="Coffee", help="commodity asked about (default: Coffee)")
    p.add_argument("--limit", type=int, default=5, help="most rows of `best` (default: 5)")
    format_opts(p)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("versions", help="model_runs' versions: time, operation, rows changed")
    engine_opts(p, as_of=False)
    format_opts(p)
    p.set_defaults(func=cmd_versions)

    p = sub.add_parser("show", help="one run: its row, every event of its history, rejects")
    engine_opts(p, as_of=False)
    p.add_argument("experiment_id", help="the run's experiment_id")
    json_opt(p, "one JSON object")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export-mlflow", help="mirror model_runs into MLflow (idempotent)")
    engine_opts(p, as_of=False)
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI, e.g. sqlite:///mlflow.db or http://host:5000 "
        "(default: $MLFLOW_TRACKING_URI, else MLflow's default ./mlruns)",
    )
    json_opt(p, "the counts as one JSON object")
    p.set_defaults(func=cmd_export_mlflow)

    p = sub.add_parser(
        "backfill",
        help="send historical runs (JSON Lines, JSON, CSV, Parquet) to the replay topic",
        description="Send historical runs from a file to the replay topic, streaming (memory "
        "stays flat in the file's size). Columns or keys are named like model_runs' columns "
        "(--map FIELD=COLUMN for other names). CSV cells are read by the field's type: numbers; "
        "booleans true/false, 1/0, yes/no; ISO dates and timestamps; hyperparameters and "
        "feature_config as JSON text or key=value;key=value; an empty cell is null. An invalid "
        "run is listed (line or row, and why) and never sent; the rest are. Acknowledged runs "
        "are kept in a ledger under $RUNSTREAM_HOME/backfill, so running it again after any "
        "failure skips them. Exit 0: all sent; 2: some invalid or unreadable; 3: Kafka "
        "unreachable or refusing the client.",
    )  # fmt: skip
    p.add_argument(
        "file", help="the file of runs: JSON Lines, a JSON array, CSV or Parquet; - for stdin"
    )
    kafka_opts(p)
    p.add_argument("--topic", help=_from(env.RUNSTREAM_REPLAY_TOPIC))
    p.add_argument(
        "--input-format", choices=["auto", "jsonl", "json", "csv", "parquet"], default="auto",
        help="how to read the file (default: auto, by its extension, else by its first bytes)",
    )  # fmt: skip
    p.add_argument(
        "--map", action="append", metavar="FIELD=COLUMN",
        help="fill the model_runs column FIELD from the file's column or key COLUMN; repeatable "
        "(default: each column fills the field of its own name)",
    )  # fmt: skip
    p.add_argument(
        "--dry-run", action="store_true",
        help="read and validate every run, list the invalid ones, send nothing",
    )  # fmt: skip
    p.add_argument(
        "--resend", action="store_true",
        help="send runs the ledger says were acknowledged too (e.g. after a topic was "
        "recreated); duplicates are harmless",
    )  # fmt: skip
    p.add_argument(
        "--list-invalid", type=int, default=20, metavar="N",
        help="list at most N invalid runs on stderr; the summary counts all (default: 20)",
    )  # fmt: skip
    p.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress bar (it is shown only when stderr is a terminal)",
    )  # fmt: skip
    json_opt(p, "the summary as one JSON object")
    p.set_defaults(func=cmd_backfill)

    topics = sub.add_parser("topics", help="the job's Kafka topics on a real cluster")
    topics_sub = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = topics_sub.add_parser(
        "create", help="create the live and replay topics (replicated, kept forever)",
        description="Create the topics the job reads, once per cluster. They are the source "
        "of the event log: a rebuild or a new checkpoint replays them from the start, so "
        "they keep their records forever by default (retention.ms=-1).",
    )  # fmt: skip
    kafka_opts(p)
    p.add_argument(
        "--topic", action="append",
        help="a topic to create (repeatable; default: $RUNSTREAM_TOPIC and "
        "$RUNSTREAM_REPLAY_TOPIC, else model_runs and model_runs.replay)",
    )  # fmt: skip
    p.add_argument("--partitions", type=int, default=3, help="partitions per topic (default: 3)")
    p.add_argument(
        "--replication-factor", type=int,
        help="copies of each partition (default: 3, or the number of brokers when fewer)",
    )  # fmt: skip
    p.add_argument(
        "--retention-ms", type=int, default=-1,
        help="topic retention.ms (default: -1, keep forever: the topics must outlive the "
        "consumer's checkpoint)",
    )  # fmt: skip
    json_opt(p)
    p.set_defaults(func=cmd_topics_create)
    p = topics_sub.add_parser("list", help="topics with partitions and replication factor")
    kafka_opts(p)
    p.add_argument(
        "--topic", action="append", help="only this topic (repeatable; default: every topic)"
    )
    json_opt(p, "one JSON object per topic")
    p.set_defaults(func=cmd_topics_list)

    p = sub.add_parser("rebuild", help="recompute model_runs from the event log alone")
    table_opts(p)
    json_opt(p, "the result as one JSON object")
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("maintain", help="OPTIMIZE and VACUUM the three tables")
    table_opts(p)
    p.add_argument(
        "--vacuum-hours",
        type=float,
        default=168.0,
        help="keep files this many hours (default: 168, Delta's safe minimum)",
    )
    json_opt(p, "the report as one JSON line")
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("dashboard", help="write an HTML dashboard of model_runs")
    engine_opts(p)
    p.add_argument(
        "-o", "--output", default="model_runs_dashboard.html",
        help="the page to write (default: model_runs_dashboard.html)",
    )  # fmt: skip
    p.add_argument(
        "--serve", type=int, nargs="?", const=8765, metavar="PORT",
        help="then serve the page on http://127.0.0.1:PORT until Ctrl-C (default: off; "
        "PORT defaults to 8765)",
    )  # fmt: skip
    json_opt(p, "the page's path as one JSON object")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("schema", help="print the three tables' CREATE TABLE statements")
    table_opts(p)
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("jars", help="fetch the broker's and Spark's jars with Maven (once)")
    json_opt(p)
    p.set_defaults(func=cmd_jars)

    from runstream.demo import DEMO_WINDOWS

    p = sub.add_parser(
        "demo", help="a walk-forward backtest (200 runs), end to end, on this machine"
    )
    p.add_argument("--port", type=int, default=9092, help="the broker's port (default: 9092)")
    p.add_argument("--keep-broker", action="store_true", help="leave Kafka running afterwards")
    p.add_argument(
        "--windows", type=int, default=DEMO_WINDOWS,
        help=f"walk-forward windows per commodity, each 25 runs (default: {DEMO_WINDOWS}, so "
        f"{DEMO_WINDOWS * 50} runs); 0 records the seed's one example run instead",
    )  # fmt: skip
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    detailed = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=detailed if args.verbose else "%(message)s")
    if not args.verbose:
        # kafka-python logs every failed bootstrap attempt; runstream reports the outcome as
        # one line (its own error or warning), -v shows the client's details.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    handler: Handler = args.func
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("runstream: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader stopped reading (`runstream query prune | head`): nothing went wrong.
        # Point stdout at /dev/null so flushing it at exit raises nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except RunstreamError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"runstream: {one_line(exc)}", file=sys.stderr)
        return exit_code(exc)
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        print(
            f"runstream: internal error ({type(exc).__name__}: {one_line(exc)[:300]}); "
            "run again with -v for the details and report them",
            file=sys.stderr,
        )
        return EXIT_BUG
