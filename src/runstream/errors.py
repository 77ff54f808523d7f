"""The package's one exception tree.

::

    RunstreamError
    ├── ValidationError (ValueError)      bad input at emit_run(): names every field and the fix
    ├── SchemaError (ValueError)          an Avro schema or wire header that cannot be read
    ├── SpoolError (OSError)              the local spool cannot take or give an event
    │   └── SpoolFullError                the spool reached its bound; nothing was dropped
    ├── InputError (ValueError)           a file or document given to a command cannot be used
    ├── ConfigError (ValueError)          a setting holds a value runstream cannot use
    ├── RetentionError (ValueError)       VACUUM asked to keep less history than is safe
    ├── SetupError (RuntimeError)         a missing tool or artifact (Java, Maven, jars)
    ├── BrokerError (RuntimeError)        the development broker would not start or stop
    ├── BrokerUnreachableError (ConnectionError)  no Kafka broker answers at the address
    │   └── KafkaAuthError                a broker answers, refuses the client (credentials, TLS)
    ├── TableNotFoundError (LookupError)  a command needs a table that does not exist yet
    └── TopicMissingError (LookupError)   a multi-broker cluster lacks a topic the job reads

Each subclass also inherits the builtin a caller would naturally catch, so ``except ValueError``
and ``except RunstreamError`` both work. Network trouble while sending is never raised into a
caller's backtest: the sender logs it and retries from the spool.
"""

from __future__ import annotations


class RunstreamError(Exception):
    """Root of every error runstream raises on purpose."""


class ValidationError(RunstreamError, ValueError):
    """A run failed validation. ``problems`` holds one message per field, in field order."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        noun = "problem" if len(problems) == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"run rejected, {len(problems)} {noun}; nothing was written:\n{lines}")


class SchemaError(RunstreamError, ValueError):
    """An event's header or schema cannot be understood."""


class SpoolError(RunstreamError, OSError):
    """The spool directory cannot be used."""


class SpoolFullError(SpoolError):
    """The spool holds its maximum; the new event was refused, nothing accepted was dropped."""


class InputError(RunstreamError, ValueError):
    """A file or document given to a command is missing, unreadable or malformed."""


class ConfigError(RunstreamError, ValueError):
    """A setting (keyword argument or environment variable) holds a value that cannot work."""


class RetentionError(RunstreamError, ValueError):
    """VACUUM was asked to keep less history than is safe, without ``force=True``."""


class SetupError(RunstreamError, RuntimeError):
    """A prerequisite (Java, Maven, a jar) is missing or failed to resolve."""


class BrokerError(RunstreamError, RuntimeError):
    """The local development broker could not be started, reached or stopped."""


class BrokerUnreachableError(RunstreamError, ConnectionError):
    """No Kafka broker answered at the configured address within a bounded wait."""


class KafkaAuthError(BrokerUnreachableError):
    """A broker answers TCP but refuses this client: wrong credentials or mechanism, or a TLS
    endpoint that cannot be verified. Waiting does not help; the configuration must change."""


class TopicMissingError(RunstreamError, LookupError):
    """A topic the job reads does not exist on a multi-broker cluster, where runstream will not
    create it silently (it would get replication factor 1); ``runstream topics create`` does."""


class TableNotFoundError(RunstreamError, LookupError):
    """A command reads a table that no job has created yet."""
