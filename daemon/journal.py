"""The journal handler: log records to journald with their upper-case
``extra`` fields (``CLIENT_ADDRESS``, ``FRAMES_ACCEPTED`` ...) as journal
fields.  Needs systemd-python (daemon/systemd.py decides when to use it)."""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["SYSLOG_IDENTIFIER", "make_journal_handler"]

SYSLOG_IDENTIFIER = "gravity-led"
"""What ``journalctl -t`` and the journal's SYSLOG_IDENTIFIER field show."""

def _import_journal() -> Any:
    from systemd import journal  # type: ignore[import-not-found]  # optional extra

    return journal


_FIELD = re.compile(r"[A-Z0-9][A-Z0-9_]{0,63}")
"""A journal field name a client may set (no leading underscore: those are
trusted fields that journald fills in itself)."""

_SET_BY_HANDLER = frozenset(
    {"MESSAGE", "PRIORITY", "LOGGER", "THREAD_NAME", "PROCESS_NAME", "CODE_FILE", "CODE_LINE", "CODE_FUNC"}
)


def make_journal_handler(sender: Any = None, **fields: str) -> logging.Handler:
    """A :class:`systemd.journal.JournalHandler` that sends upper-case ``extra``
    fields as journal fields, and nothing else from the log record.

    The stock handler copies the whole ``record.__dict__`` into the message
    (``msg``, ``args``, ``exc_info``, ``levelname`` ...): journald drops those
    lower-case names, and an upper-case ``extra`` such as ``MESSAGE`` would
    duplicate the message field. This subclass keeps only valid, upper-case
    field names and stringifies their values. ``sender`` replaces
    ``systemd.journal.send`` (tests); ``fields`` are added to every message.

    Raises ImportError without systemd-python.
    """
    journal = _import_journal()

    class _JournalHandler(journal.JournalHandler):  # type: ignore[misc,name-defined]
        def emit(self, record: logging.LogRecord) -> None:
            try:
                msg = self.format(record)
                extras = dict(self._extra)
                for key, value in record.__dict__.items():
                    if key in _SET_BY_HANDLER or not _FIELD.fullmatch(key):
                        continue
                    if key == "MESSAGE_ID":
                        value = getattr(value, "hex", value)
                    extras[key] = value if isinstance(value, bytes) else str(value)
                if record.exc_text:
                    extras["EXCEPTION_TEXT"] = record.exc_text
                self.send(
                    msg,
                    PRIORITY=format(self.map_priority(record.levelno)),
                    LOGGER=record.name,
                    THREAD_NAME=str(record.threadName),
                    PROCESS_NAME=str(record.processName),
                    CODE_FILE=str(record.pathname),
                    CODE_LINE=int(record.lineno),
                    CODE_FUNC=str(record.funcName),
                    **extras,
                )
            except Exception:
                self.handleError(record)

    _JournalHandler.__name__ = _JournalHandler.__qualname__ = "GravityJournalHandler"
    fields.setdefault("SYSLOG_IDENTIFIER", SYSLOG_IDENTIFIER)
    kwargs: dict[str, Any] = dict(fields)
    if sender is not None:
        kwargs["sender_function"] = sender
    handler = _JournalHandler(**kwargs)
    # The journal stamps time, level and unit itself: the message alone.
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler
