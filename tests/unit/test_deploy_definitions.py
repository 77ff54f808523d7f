"""The deployment definitions a user deploys as they are: compose.yaml and the Databricks
Asset Bundle (deploy/databricks/databricks.yml).

Neither runs here (no Docker engine, no workspace), so these tests hold what would otherwise
break silently on the user's machine: a command line the CLI no longer accepts, the broker's
data outside its volume, a service started before what it needs, a secret in the file.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from runstream.cli import build_parser
from runstream.consumer.tables import is_uri

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
BUNDLE = ROOT / "deploy" / "databricks" / "databricks.yml"
KAFKA_PROPERTIES = ROOT / "deploy" / "databricks" / "kafka.properties"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def _accepted(argv: list[str]) -> Any:
    """``argv`` (without the program name) as the CLI parses it; argparse exits on a refusal."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed why on stderr
        pytest.fail(f"runstream refuses {shlex.join(argv)} (exit {exc.code})")


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


# -- compose.yaml ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE)


def test_every_image_is_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image or "build" in service, f"service {name} has neither image nor build"
        if image:
            repo, _, tag = image.rpartition(":") if ":" in image else (image, "", "")
            assert repo and tag and tag != "latest", f"service {name}: pin {image!r} to a version"


def test_kafka_keeps_its_log_in_the_mounted_volume(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    log_dirs = str(kafka["environment"].get("KAFKA_LOG_DIRS", ""))
    assert log_dirs, "set KAFKA_LOG_DIRS: the image's default log folder is under /tmp"
    named = set(compose.get("volumes") or {})
    mounts = {m.split(":")[1]: m.split(":")[0] for m in kafka["volumes"]}
    for folder in log_dirs.split(","):
        assert folder in mounts, f"KAFKA_LOG_DIRS names {folder}, where no volume is mounted"
        assert mounts[folder] in named, f"{folder} is mounted from {mounts[folder]}, not a volume"


def test_advertised_host_is_configurable(compose: dict[str, Any]) -> None:
    advertised = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "${RUNSTREAM_ADVERTISED_HOST" in advertised
    assert "RUNSTREAM_ADVERTISED_HOST" in (ROOT / "README.md").read_text()


def test_services_start_in_order_once_what_they_need_is_ready(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "healthcheck" in services["kafka"], "the broker needs a healthcheck to be waited on"
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["consumer"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "topics": {"condition": "service_completed_successfully"},
    }
    assert services["topics"].get("restart", "no") == "no", "a one-shot step must not restart"
    for name, service in services.items():
        for needed, how in (service.get("depends_on") or {}).items():
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits on {needed}'s health"


def test_commands_are_ones_the_cli_accepts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("topics", "consumer"):
        argv = _command(services[name])
        assert argv[0] == "runstream", f"{name} runs {argv[0]}, not the runstream CLI"
        _accepted(argv[1:])
    assert _accepted(_command(services["topics"])[1:]).action == "create"
    consumer = _accepted(_command(services["consumer"])[1:])
    assert consumer.func.__name__ == "cmd_consume"
    lake = services["consumer"]["environment"]["RUNSTREAM_LAKE"]
    assert any(v.endswith(":" + lake) for v in services["consumer"]["volumes"]), (
        f"the lake {lake} is not on a volume: the tables and checkpoint would die with the "
        "container"
    )


# -- Databricks Asset Bundle -----------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return _load(BUNDLE)


def _consume_task(bundle: dict[str, Any]) -> dict[str, Any]:
    (job,) = bundle["resources"]["jobs"].values()
    (task,) = job["tasks"]
    return dict(task)


def _cluster(bundle: dict[str, Any]) -> dict[str, Any]:
    (job,) = bundle["resources"]["jobs"].values()
    (cluster,) = job["job_clusters"]
    return dict(cluster["new_cluster"])


def _with_variables(text: str, bundle: dict[str, Any]) -> str:
    """``${var.x}`` filled in with an example value (the default, else ``x``)."""

    def value(match: re.Match[str]) -> str:
        spec = bundle["variables"][match[1]]
        return str(spec.get("default", f"example_{match[1]}"))

    return re.sub(r"\$\{var\.(\w+)\}", value, text)


def test_the_task_runs_consume_with_options_the_cli_accepts(bundle: dict[str, Any]) -> None:
    wheel = _consume_task(bundle)["python_wheel_task"]
    assert (wheel["package_name"], wheel["entry_point"]) == ("runstream", "runstream")
    argv = [_with_variables(str(p), bundle) for p in wheel["parameters"]]
    args = _accepted(argv)
    assert args.func.__name__ == "cmd_consume"
    assert not args.once, "the Databricks job streams; --once would stop after one batch"

    table = args.table
    assert table and len(table.split(".")) == 3, f"{table!r} is not catalog.schema.table"
    assert args.checkpoint, "without --checkpoint the job would keep it on the driver's disk"
    local = not is_uri(args.checkpoint) and not args.checkpoint.startswith(
        ("/Volumes/", "/Workspace/")
    )
    assert not local, f"checkpoint {args.checkpoint} is on the cluster's local disk"


def test_the_cluster_uses_databricks_own_jars_and_reads_secrets_from_a_scope(
    bundle: dict[str, Any],
) -> None:
    spark_env = _cluster(bundle)["spark_env_vars"]
    assert spark_env["RUNSTREAM_SPARK_JARS"] == "none"
    assert "RUNSTREAM_KAFKA_PROPERTIES" in spark_env
    secret_refs = [v for v in spark_env.values() if str(v).startswith("{{secrets/")]
    assert secret_refs, "the Kafka password must come from a secret scope"
    properties = KAFKA_PROPERTIES.read_text()
    for name, value in spark_env.items():
        if str(value).startswith("{{secrets/"):
            assert f"${{env:{name}}}" in properties, f"kafka.properties never reads {name}"


SECRET_KEY = re.compile(r"(?i)password|secret|token|jaas|credential")
REFERENCE = ("{{secrets/", "${env:", "${var.")


def _secret_values(node: Any, key: str = "") -> list[tuple[str, str]]:
    """(key, value) of every string under a key that names a secret, at any depth."""
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in _secret_values(v, str(k))]
    if isinstance(node, list):
        return [kv for item in node for kv in _secret_values(item, key)]
    return [(key, str(node))] if SECRET_KEY.search(key) and node is not None else []


def test_no_secret_literal_in_the_deployment_files(
    bundle: dict[str, Any], compose: dict[str, Any]
) -> None:
    """Secrets appear only as references: a secret scope, or ``${env:NAME}``."""
    for where, data in (("databricks.yml", bundle), ("compose.yaml", compose)):
        for key, value in _secret_values(data):
            assert value.startswith(REFERENCE), (
                f"{where}: {key} holds a literal; use {{{{secrets/<scope>/<key>}}}} "
                "or ${env:NAME}"
            )
    # In the properties file: secret keys, and password="..." inside a JAAS line.
    for line in KAFKA_PROPERTIES.read_text().splitlines():
        key, sep, value = line.partition("=")
        if line.lstrip().startswith("#") or not sep:
            continue
        literals = re.findall(r'(?i)password\s*=\s*"?([^";\s]+)', value)
        if SECRET_KEY.search(key) and key.strip() != "sasl.jaas.config":
            literals.append(value.strip())
        for literal in literals:
            assert literal.startswith(REFERENCE), (
                f"kafka.properties: {key.strip()} holds a literal secret; use ${{env:NAME}}"
            )


def test_the_databricks_cluster_sets_the_avro_limits_the_local_session_sets() -> None:
    from runstream.consumer.session import AVRO_LIMITS

    bundle = yaml.safe_load((ROOT / "deploy" / "databricks" / "databricks.yml").read_text())
    clusters = [
        cluster["new_cluster"]
        for job in bundle["resources"]["jobs"].values()
        for cluster in job.get("job_clusters", [])
    ]
    assert clusters, "the bundle defines no job cluster"
    for cluster in clusters:
        for key, options in AVRO_LIMITS.items():
            assert cluster["spark_conf"][key].split() == options.split()
