"""One Kafka client configuration for every part: the sender, ``emit``, ``backfill``, topic
creation, probes and the Spark job.

Why one place: a managed Kafka service hands out one Java-style client properties file
(``bootstrap.servers``, ``security.protocol``, ``sasl.*``, ``ssl.*``), and Kafka's own tools read
it as is. runstream reads that same file, named by ``RUNSTREAM_KAFKA_PROPERTIES`` (or
``kafka_properties=`` / ``--kafka-properties``), and derives from it both kafka-python's settings
(the light producer half) and the ``kafka.``-prefixed options of Spark's Kafka source, so the two
halves cannot drift apart.

- ``${env:NAME}`` in a value is replaced by the environment variable ``NAME`` (a Databricks
  secret scope, a CI secret), so the file itself can be checked in without secrets.
- The bootstrap address: ``bootstrap_servers=`` / ``--bootstrap-servers``, else
  ``RUNSTREAM_BOOTSTRAP_SERVERS`` when set, else ``bootstrap.servers`` from the file, else
  ``127.0.0.1:9092``.
- ``RUNSTREAM_KAFKA_CONFIG`` (JSON of kafka-python names) stays as a producer-only escape hatch
  for tuning the light half (``linger_ms``, ``client_id``); it is read here too and applied over
  the file's settings, never to Spark.

Secrets (passwords, JAAS lines, keys) never reach a log line, an event, the spool, an error
message or ``repr``: ``scrub`` removes every secret value from a text, and the config's ``repr``
shows none. Wrong credentials or a TLS endpoint that cannot be verified are reported by
``check_connection`` as one ``KafkaAuthError`` within a bounded time, with the reason the client
saw (kafka-python itself only says "Unable to bootstrap").
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runstream import environment_variables as env
from runstream import network
from runstream.errors import BrokerUnreachableError, ConfigError, KafkaAuthError, ValidationError

log = logging.getLogger(__name__)

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
# librdkafka / Confluent-style keys the Java client does not know: translated for Spark.
_LIBRDKAFKA_ONLY = (
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
)
_SECRET_WORDS = ("password", "jaas", "secret", "token", "ssl.keystore.key", "credential")
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_JAAS_FIELD = r'\b{name}\s*=\s*"((?:[^"\\]|\\.)*)"'


def is_secret_key(key: str) -> bool:
    """Whether a property's value must never be shown (passwords, JAAS lines, inline keys)."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


# -- the properties format ------------------------------------------------------------------
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterator[str]:
    """Java's logical lines: comments (# or !) and blanks dropped, a line ending in an odd
    number of backslashes continues on the next one (its leading blanks dropped)."""
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f")
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java ``.properties`` text (``java.util.Properties.load``): ``key=value``,
    ``key: value`` or ``key value``; ``#``/``!`` comments; backslash continuations and escapes
    (``\\t``, ``\\n``, ``\\uXXXX``, ``\\=``). Small enough to keep here rather than add a
    dependency to the light half."""
    props: dict[str, str] = {}
    for line in _logical_lines(text):
        i, key_end = 0, None
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] in "=: \t\f":
                key_end = i
                break
            i += 1
        if key_end is None:
            props[_unescape(line)] = ""
            continue
        rest = line[key_end:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        props[_unescape(line[:key_end])] = _unescape(rest)
    return props


def _resolve_env(key: str, value: str, where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"{where}: {key} refers to ${{env:{name}}}, but the environment variable {name} "
                "is not set; set it (e.g. from your secret store) or write the value in the file"
            )
        return os.environ[name]

    return _ENV_REF.sub(replace, value)


def read_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    """The file's properties with ``${env:NAME}`` references resolved. Errors name the file and
    the key, never a value."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"the Kafka client properties file {file} does not exist; fix "
            f"{env.RUNSTREAM_KAFKA_PROPERTIES.name} (--kafka-properties) or create it"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the Kafka client properties file {file} ({type(exc).__name__}); "
            "check its permissions and that it is UTF-8 text"
        ) from exc
    return {k: _resolve_env(k, v, str(file)) for k, v in parse_properties(text).items()}


def _jaas_field(jaas: str, name: str) -> str | None:
    match = re.search(_JAAS_FIELD.format(name=name), jaas)
    return None if match is None else re.sub(r"\\(.)", r"\1", match.group(1))


def _jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- kafka-python's own log lines ---------------------------------------------------------------
_KNOWN_SECRETS: set[str] = set()


class _ScrubSecrets(logging.Filter):
    """Masks known secrets in kafka-python's records: at DEBUG it logs whole requests, the SASL
    PLAIN handshake (password in clear) included, and its settings."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _KNOWN_SECRETS:
            message = record.getMessage()
            clean = message
            for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
                clean = clean.replace(secret, "***")
            if clean != message:
                record.msg, record.args = clean, None
        return True


_SCRUBBER = _ScrubSecrets()


def _guard_client_logs(secrets: list[str]) -> None:
    """Register ``secrets`` and put the scrubbing filter on every ``kafka.*`` logger that
    exists (a logger's filters do not apply to its children, so each gets its own)."""
    _KNOWN_SECRETS.update(secrets)
    if not _KNOWN_SECRETS:
        return
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        ours = name == "kafka" or name.startswith("kafka.")
        if ours and isinstance(logger, logging.Logger) and _SCRUBBER not in logger.filters:
            logger.addFilter(_SCRUBBER)


# -- the configuration ----------------------------------------------------------------------
@dataclass(frozen=True)
class KafkaClientConfig:
    """Where Kafka is and how to authenticate: built by ``load``, read by every part.

    ``properties`` are Java client names with ``${env:...}`` resolved (secrets included, so
    they are left out of ``repr``); ``producer_extra`` is kafka-python producer tuning from
    ``RUNSTREAM_KAFKA_CONFIG`` or ``kafka_config=``.
    """

    bootstrap_servers: str
    properties: Mapping[str, str] = field(default_factory=dict, repr=False)
    source: str = "default"
    producer_extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def security_protocol(self) -> str:
        return self.properties.get("security.protocol", "PLAINTEXT").upper()

    @property
    def mechanism(self) -> str | None:
        value = self.properties.get("sasl.mechanism")
        return value.upper() if value else None

    def describe(self) -> str:
        """A safe one-liner for messages: address, protocol and mechanism, no secrets."""
        tail = f" {self.mechanism}" if self.mechanism and "SASL" in self.security_protocol else ""
        return f"Kafka at {self.bootstrap_servers} ({self.security_protocol}{tail})"

    def credentials(self) -> tuple[str, str] | None:
        """(username, password) from ``sasl.username``/``sasl.password`` or the JAAS line."""
        props = self.properties
        user, password = props.get("sasl.username"), props.get("sasl.password")
        jaas = props.get("sasl.jaas.config")
        if jaas:
            user = user if user is not None else _jaas_field(jaas, "username")
            password = password if password is not None else _jaas_field(jaas, "password")
        if user is None or password is None:
            return None
        return user, password

    def secrets(self) -> list[str]:
        """Every secret value this configuration holds, longest first (for ``scrub``)."""
        found = {v for k, v in self.properties.items() if is_secret_key(k) and v}
        creds = self.credentials()
        if creds and creds[1]:
            found.add(creds[1])
        found.update(
            str(v)
            for k, v in self.producer_extra.items()
            if is_secret_key(k) or "password" in k or k.endswith("_key")
        )
        return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    # -- kafka-python (the light half) -------------------------------------------------------
    def python_settings(self) -> dict[str, Any]:
        """kafka-python's connection and security settings (any client: producer, admin,
        consumer), bootstrap included. Raises ConfigError for what kafka-python cannot use."""
        props = self.properties
        _guard_client_logs(self.secrets())
        settings: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers.split(",")}
        protocol = self.security_protocol
        settings["security_protocol"] = protocol
        if "SASL" in protocol:
            mechanism = self.mechanism
            settings["sasl_mechanism"] = mechanism
            creds = self.credentials()
            assert creds is not None  # checked by load()
            settings["sasl_plain_username"], settings["sasl_plain_password"] = creds
        if "SSL" in protocol:
            cafile = props.get("ssl.ca.location")
            truststore = props.get("ssl.truststore.location")
            kind = props.get("ssl.truststore.type", "JKS").upper()
            if cafile is None and truststore:
                if kind != "PEM":
                    raise ConfigError(
                        f"ssl.truststore.location is a {kind} truststore, which kafka-python (the "
                        "producer half) cannot read; export its CA as PEM (keytool -exportcert "
                        "-rfc -keystore <truststore> -alias <alias> -file ca.pem) and add "
                        "ssl.ca.location=ca.pem to the properties file"
                    )
                cafile = truststore
            if cafile:
                settings["ssl_cafile"] = str(Path(cafile).expanduser())
            cert, key = props.get("ssl.certificate.location"), props.get("ssl.key.location")
            if props.get("ssl.keystore.location") and not (cert and key):
                raise ConfigError(
                    "ssl.keystore.location (a client certificate in a keystore) cannot be used "
                    "by kafka-python; give ssl.certificate.location and ssl.key.location (PEM) "
                    "instead"
                )
            if cert:
                settings["ssl_certfile"] = str(Path(cert).expanduser())
            if key:
                settings["ssl_keyfile"] = str(Path(key).expanduser())
            if props.get("ssl.key.password"):
                settings["ssl_password"] = props["ssl.key.password"]
            algorithm = props.get("ssl.endpoint.identification.algorithm", "https")
            settings["ssl_check_hostname"] = algorithm.strip().lower() == "https"
        return settings

    def producer_settings(self) -> dict[str, Any]:
        """``python_settings`` plus the producer tuning of ``RUNSTREAM_KAFKA_CONFIG``."""
        return {**self.python_settings(), **self.producer_extra}

    # -- Spark ---------------------------------------------------------------------------------
    def spark_options(self) -> dict[str, str]:
        """Options for Spark's Kafka source, ``kafka.``-prefixed, bootstrap included.

        Java client names pass through; librdkafka-style keys are translated: username and
        password become a ``sasl.jaas.config`` line (PlainLoginModule or ScramLoginModule;
        under ``kafkashaded.`` with ``RUNSTREAM_SPARK_JARS=none``, as Databricks relocates it),
        ``ssl.ca.location`` a PEM truststore, a PEM certificate and key an inline PEM keystore.
        """
        props = dict(self.properties)
        options = {"kafka.bootstrap.servers": self.bootstrap_servers}
        for key, value in props.items():
            if key in _LIBRDKAFKA_ONLY or key == "bootstrap.servers":
                continue
            options[f"kafka.{key}"] = value
        if "SASL" in self.security_protocol and "sasl.jaas.config" not in props:
            creds = self.credentials()
            assert creds is not None and self.mechanism is not None  # checked by load()
            module = _LOGIN_MODULES[self.mechanism]
            if env.RUNSTREAM_SPARK_JARS.get() == "none":
                # Databricks runtimes ship the Kafka client relocated under ``kafkashaded.``
                module = f"kafkashaded.{module}"
            options["kafka.sasl.jaas.config"] = (
                f"{module} required username={_jaas_quote(creds[0])} "
                f"password={_jaas_quote(creds[1])};"
            )
        if "SSL" in self.security_protocol:
            ca = props.get("ssl.ca.location")
            if ca and "ssl.truststore.location" not in props:
                options["kafka.ssl.truststore.type"] = "PEM"
                options["kafka.ssl.truststore.location"] = str(Path(ca).expanduser().absolute())
            cert_file = props.get("ssl.certificate.location")
            key_file = props.get("ssl.key.location")
            if cert_file and key_file and "ssl.keystore.location" not in props:
                options["kafka.ssl.keystore.type"] = "PEM"
                options["kafka.ssl.keystore.certificate.chain"] = _read(cert_file)
                options["kafka.ssl.keystore.key"] = _read(key_file)
        return options


def _read(path: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({type(exc).__name__}); check the path") from exc


def _env_kafka_config() -> dict[str, Any]:
    """``RUNSTREAM_KAFKA_CONFIG``: a JSON object of kafka-python producer settings."""
    raw = env.RUNSTREAM_KAFKA_CONFIG.get()
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            [f"RUNSTREAM_KAFKA_CONFIG must be a JSON object of kafka-python settings: {exc.msg}"]
        ) from exc
    if not isinstance(parsed, dict):
        raise ValidationError(
            [
                'RUNSTREAM_KAFKA_CONFIG must be a JSON object such as {"linger_ms": 10}; '
                "security settings (SASL, TLS) belong in RUNSTREAM_KAFKA_PROPERTIES"
            ]
        )
    return parsed


def _check(props: Mapping[str, str], where: str) -> None:
    protocol = props.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"{where}: security.protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}"
        )
    if "SASL" not in protocol:
        return
    mechanism = (props.get("sasl.mechanism") or "").upper()
    if mechanism not in MECHANISMS:
        shown = repr(mechanism) if mechanism else "nothing"
        raise ConfigError(
            f"{where}: security.protocol={protocol} needs sasl.mechanism, one of "
            f"{', '.join(MECHANISMS)}; got {shown}"
        )
    probe = KafkaClientConfig("-", props)
    if probe.credentials() is None:
        raise ConfigError(
            f"{where}: {mechanism} needs credentials: sasl.username and sasl.password, or a "
            'sasl.jaas.config with username="..." and password="..."'
        )


def load(
    bootstrap_servers: str | None = None,
    *,
    properties_file: str | os.PathLike[str] | None = None,
    kafka_config: Mapping[str, Any] | None = None,
) -> KafkaClientConfig:
    """The one client configuration, by the precedence in the module docstring.

    ``properties_file``: a Java client properties file (default ``RUNSTREAM_KAFKA_PROPERTIES``;
    empty: none, plaintext). ``kafka_config``: kafka-python producer tuning (default
    ``RUNSTREAM_KAFKA_CONFIG``).
    """
    path = env.RUNSTREAM_KAFKA_PROPERTIES.get(
        None if properties_file is None else os.fspath(properties_file)
    )
    props = read_properties(path) if path else {}
    where = f"Kafka client properties {path}" if path else "Kafka client settings"
    _check(props, where)
    if bootstrap_servers:
        bootstrap, source = bootstrap_servers, "--bootstrap-servers"
    elif os.environ.get(env.RUNSTREAM_BOOTSTRAP_SERVERS.name):
        bootstrap = os.environ[env.RUNSTREAM_BOOTSTRAP_SERVERS.name]
        source = env.RUNSTREAM_BOOTSTRAP_SERVERS.name
    elif props.get("bootstrap.servers"):
        bootstrap, source = props["bootstrap.servers"], f"bootstrap.servers in {path}"
    else:
        bootstrap, source = env.RUNSTREAM_BOOTSTRAP_SERVERS.default, "the default"
    bootstrap = ",".join(part.strip() for part in bootstrap.split(",") if part.strip())
    extra = dict(kafka_config) if kafka_config is not None else _env_kafka_config()
    return KafkaClientConfig(bootstrap, props, source, extra)


# -- bounded checks ---------------------------------------------------------------------------
def _tls_problem(config: KafkaClientConfig, timeout_s: float) -> str | None:
    """A TLS handshake with the first address, as kafka-python would do it; the reason it
    fails, or None. Tells a certificate problem apart from wrong credentials."""
    try:
        settings = config.python_settings()
    except ConfigError as exc:
        return str(exc)
    ctx = ssl.create_default_context(cafile=settings.get("ssl_cafile"))
    ctx.check_hostname = bool(settings.get("ssl_check_hostname", True))
    if not ctx.check_hostname:
        ctx.verify_mode = ssl.CERT_REQUIRED
    if settings.get("ssl_certfile"):
        ctx.load_cert_chain(
            settings["ssl_certfile"], settings.get("ssl_keyfile"), settings.get("ssl_password")
        )
    host, _, port = config.bootstrap_servers.split(",")[0].strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        with (
            socket.create_connection((host, int(port)), timeout_s) as sock,
            ctx.wrap_socket(sock, server_hostname=host),
        ):
            return None
    except ssl.SSLError as exc:
        return f"the TLS handshake with {host}:{port} failed ({exc.reason or exc})"
    except (OSError, ValueError) as exc:
        return f"the TLS handshake with {host}:{port} failed ({type(exc).__name__}: {exc})"


def auth_error(config: KafkaClientConfig, reasons: list[str], what: str = "") -> KafkaAuthError:
    """The one error for a broker that answers TCP but refuses this client: names the address,
    the protocol, the likely cause and where to fix it; secrets scrubbed."""
    protocol = config.security_protocol
    detail = ""
    if "SSL" in protocol:
        detail = _tls_problem(config, 5.0) or ""
        if detail:
            detail += (
                "; check ssl.ca.location (the CA that signed the broker's certificate), "
                "ssl.endpoint.identification.algorithm and that the port speaks TLS"
            )
    if not detail:
        # kafka-python says only "Unable to bootstrap" (the cause is in the broker's log)
        useful = [r for r in reasons if "unable to bootstrap" not in r.lower()]
        seen = re.sub(r"\s+", " ", (useful or [""])[-1])[:300]
        if "SASL" in protocol:
            detail = (
                f"authentication with {config.mechanism} failed; check sasl.username and "
                "sasl.password (or sasl.jaas.config) and sasl.mechanism"
            )
        else:
            detail = (
                "the broker did not accept the connection; check security.protocol (a secured "
                "listener needs SSL, SASL_SSL or SASL_PLAINTEXT) and the port"
            )
        if seen:
            detail += f" (the client saw: {seen})"
    where = (
        f"{env.RUNSTREAM_KAFKA_PROPERTIES.name} (--kafka-properties)"
        if config.properties
        else f"{env.RUNSTREAM_KAFKA_PROPERTIES.name}: none is set"
    )
    tail = f"; {what}" if what else ""
    return KafkaAuthError(
        config.scrub(
            f"{config.describe()} refused this client: {detail}; settings from {where}{tail}"
        )
    )


def admin_client(config: KafkaClientConfig, timeout_s: float = 10.0, **extra: Any) -> Any:
    """A connected ``KafkaAdminClient`` within ``timeout_s``, or one clear error:
    ``BrokerUnreachableError`` (nothing answers) or ``KafkaAuthError`` (credentials or TLS)."""
    from kafka import KafkaAdminClient

    if not network.reachable(config.bootstrap_servers):
        raise network.unreachable(config.bootstrap_servers)
    settings = {
        **config.python_settings(),
        "client_id": "runstream-admin",
        "request_timeout_ms": int(timeout_s * 1000),
        "bootstrap_timeout_ms": int(timeout_s * 1000),
        **extra,
    }
    try:
        return KafkaAdminClient(**settings)
    except Exception as exc:
        seen = [f"{type(exc).__name__}: {exc}"]
    raise auth_error(config, seen) from None


def check_connection(config: KafkaClientConfig, timeout_s: float = 10.0, what: str = "") -> None:
    """Raise ``BrokerUnreachableError`` or ``KafkaAuthError`` unless a metadata round trip with
    this configuration succeeds within about ``timeout_s`` (used before work that would
    otherwise fail late or silently: the CLI's verbs, the Spark job's start)."""
    started = time.monotonic()
    try:
        admin = admin_client(config, timeout_s)
    except BrokerUnreachableError as exc:
        if what:
            raise BrokerUnreachableError(f"{exc}; {what}") from None
        raise
    except KafkaAuthError as exc:
        if what:
            raise KafkaAuthError(f"{exc}; {what}") from None
        raise
    try:
        admin.list_topics()
    except Exception as exc:
        raise auth_error(config, [f"{type(exc).__name__}: {exc}"], what) from None
    finally:
        admin.close()
    log.debug("%s answered in %.1fs", config.describe(), time.monotonic() - started)
