"""The ``runstream`` command: a thin layer over the library (argparse, stdlib only).

Spark-side commands import Spark only when they run, so ``runstream spool status`` works on a
machine that installed the light producer alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runstream import environment_variables as env
from runstream.errors import RunstreamError, SchemaError

Handler = Callable[[argparse.Namespace], int]


def _print(obj: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    else:
        for key, value in obj.items():
            print(f"{key:>14}: {value}")


# -- kafka ----------------------------------------------------------------------------------
def _broker(args: argparse.Namespace) -> Any:
    from runstream.devtools.kafka_broker import LocalBroker

    state = Path(args.state_dir).expanduser() if args.state_dir else env.home() / "kafka"
    return LocalBroker(state, port=args.port, controller_port=args.port + 1)


def cmd_kafka_up(args: argparse.Namespace) -> int:
    broker = _broker(args)
    if not broker.up():
        print(f"already running (pid {broker.pid()}) at {broker.bootstrap}; not starting another")
        return 0
    print(f"Kafka is up at {broker.bootstrap} (pid {broker.pid()}); log: {broker.log_file}")
    return 0


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
    return 0 if answering else 1


def cmd_kafka_down(args: argparse.Namespace) -> int:
    broker = _broker(args)
    print("stopped" if broker.down() else "not running")
    return 0


# -- spool ----------------------------------------------------------------------------------
def _emitter(args: argparse.Namespace) -> Any:
    from runstream.producer.emitter import Emitter

    return Emitter(
        bootstrap_servers=args.bootstrap_servers, topic=args.topic, spool_dir=args.spool_dir
    )


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
        kafka_config=emitter._sender.kafka_config,
    )  # fmt: skip
    try:
        result = sender.flush(args.timeout)
    finally:
        sender.stop()
    root = emitter.spool.root
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
        code = 3
    else:
        line = f"{', '.join(done)}; {result.left} left in {root}"
        if result.spool_error is None and result.left:
            line += f" (not all acknowledged within {args.timeout:g} s; -v shows why)"
        code = 3 if result.spool_error is not None else (1 if result.left else 0)
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
    emitter = _emitter(args)
    text = Path(args.file).read_text() if args.file != "-" else sys.stdin.read()
    runs = json.loads(text)
    for run in runs if isinstance(runs, list) else [runs]:
        receipt = emitter.emit_run(run)
        print(json.dumps({"experiment_id": receipt.experiment_id, "event_id": receipt.event_id}))
    emitter.close(args.timeout)
    return 0


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
    )  # fmt: skip

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


def cmd_query(args: argparse.Namespace) -> int:
    from runstream.consumer.job import JobConfig
    from runstream.consumer.queries import run_named_query

    config = JobConfig.from_env(lake=args.lake, table=args.table)
    rows = run_named_query(config, args.name, commodity=args.commodity, limit=args.limit)
    for row in rows:
        print(json.dumps(row, default=str))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from runstream.backfill import backfill, read_runs

    result = backfill(
        read_runs(Path(args.file)), bootstrap_servers=args.bootstrap_servers, topic=args.topic
    )
    for number, reason in result.rejected:
        print(f"record {number} rejected: {reason}", file=sys.stderr)
    print(f"sent {result.sent} run(s) to the replay topic; {len(result.rejected)} rejected")
    return 0 if not result.rejected else 1


def cmd_rebuild(args: argparse.Namespace) -> int:
    from runstream.consumer.job import JobConfig
    from runstream.consumer.rebuild import rebuild
    from runstream.consumer.session import spark_session

    config = JobConfig.from_env(lake=args.lake, table=args.table)
    rows = rebuild(spark_session("runstream-rebuild"), config.tables)
    print(f"rebuilt {config.tables.runs} from {config.tables.events}: {rows} run(s)")
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    from runstream.consumer.job import JobConfig
    from runstream.consumer.maintenance import maintain
    from runstream.consumer.session import spark_session

    config = JobConfig.from_env(lake=args.lake, table=args.table)
    report = maintain(
        spark_session("runstream-maintain"), config.tables, vacuum_hours=args.vacuum_hours
    )
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from runstream.consumer.dashboard import write_dashboard
    from runstream.consumer.job import JobConfig
    from runstream.consumer.session import spark_session

    config = JobConfig.from_env(lake=args.lake, table=args.table)
    path = write_dashboard(spark_session("runstream-dashboard"), config.tables, args.output)
    print(f"wrote {path}")
    return 0


def cmd_jars(args: argparse.Namespace) -> int:
    from runstream import jvm

    for name in (jvm.KAFKA_BROKER, jvm.SPARK_CONNECTORS):
        jars = jvm.resolve(name)
        print(f"{name}: {len(jars)} jars in {jvm.jar_dir(name)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from runstream.demo import run_demo

    return run_demo(port=args.port, keep_broker=args.keep_broker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runstream",
        description="Event-sourced experiment tracking: emit runs, send them, build model_runs.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="a local Kafka broker for development")
    kafka_sub = kafka.add_subparsers(dest="action", required=True)
    for name, fn, text in (
        ("up", cmd_kafka_up, "start it (no-op if it runs)"),
        ("status", cmd_kafka_status, "is it running and answering"),
        ("down", cmd_kafka_down, "stop it"),
    ):
        p = kafka_sub.add_parser(name, help=text)
        p.add_argument("--port", type=int, default=9092)
        p.add_argument("--state-dir", help="default: $RUNSTREAM_HOME/kafka")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=fn)

    def producer_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bootstrap-servers")
        p.add_argument("--topic")
        p.add_argument("--spool-dir")
        p.add_argument("--json", action="store_true")

    spool = sub.add_parser("spool", help="the local durable spool")
    spool_sub = spool.add_subparsers(dest="action", required=True)
    p = spool_sub.add_parser("status", help="pending count, bytes, oldest age")
    producer_opts(p)
    p.set_defaults(func=cmd_spool_status)
    p = spool_sub.add_parser("list", help="pending events, oldest first, one JSON per line")
    producer_opts(p)
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=cmd_spool_list)
    p = spool_sub.add_parser("flush", help="send pending events now")
    producer_opts(p)
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(func=cmd_spool_flush)

    p = sub.add_parser("emit", help="emit runs from a JSON file (object or list), '-' for stdin")
    producer_opts(p)
    p.add_argument("file")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_emit)

    def table_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--lake", help="folder of the local Delta tables")
        p.add_argument("--table", help="catalog name of model_runs instead of a path")

    p = sub.add_parser("consume", help="the streaming job: topics -> model_runs")
    table_opts(p)
    p.add_argument("--bootstrap-servers")
    p.add_argument("--checkpoint")
    p.add_argument("--once", action="store_true", help="process what is there, then stop")
    p.add_argument("--trigger-seconds", type=float, default=5.0)
    p.add_argument("--max-offsets-per-trigger", type=int)
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per line (each batch, then the summary) instead of text",
    )
    p.set_defaults(func=cmd_consume)

    p = sub.add_parser("query", help="the seed's queries against model_runs")
    table_opts(p)
    p.add_argument("name", choices=["best", "history", "prune", "production", "all"])
    p.add_argument("--commodity", default="Coffee")
    p.add_argument("--limit", type=int, default=5)
    p.set_defaults(func=cmd_query)
    p = sub.add_parser("backfill", help="send historical runs (JSON Lines) to the replay topic")
    p.add_argument("file")
    p.add_argument("--bootstrap-servers")
    p.add_argument("--topic", help="default: $RUNSTREAM_REPLAY_TOPIC (model_runs.replay)")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("rebuild", help="recompute model_runs from the event log alone")
    table_opts(p)
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("maintain", help="OPTIMIZE and VACUUM the three tables")
    table_opts(p)
    p.add_argument(
        "--vacuum-hours",
        type=float,
        default=168.0,
        help="keep files this many hours (default 168, Delta's safe minimum)",
    )
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("dashboard", help="write an HTML dashboard of model_runs")
    table_opts(p)
    p.add_argument("-o", "--output", default="model_runs_dashboard.html")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("jars", help="fetch the broker's and Spark's jars with Maven (once)")
    p.set_defaults(func=cmd_jars)

    p = sub.add_parser("demo", help="the seed's example run, end to end, on this machine")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--keep-broker", action="store_true", help="leave Kafka running afterwards")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler = args.func
    try:
        return handler(args)
    except RunstreamError as exc:
        print(f"runstream: {exc}", file=sys.stderr)
        return 2
