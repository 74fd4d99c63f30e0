"""Logging for the API processes, with secrets kept out of the access log."""

from __future__ import annotations

import logging


class DropQueryStrings(logging.Filter):
    """Removes query strings from uvicorn's access log lines.

    ``/verify-email?token=…`` carries a live token; an access log is read by
    more people than the mailbox it was sent to.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2].split("?", 1)[0]
            record.args = (*args[:2], path, *args[3:])
        return True


def configure(level: str) -> None:
    """Set the root level and redact the access log. Call after uvicorn's own
    logging set-up (``uvicorn.Config``), which would otherwise replace it."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, DropQueryStrings) for f in access.filters):
        access.addFilter(DropQueryStrings())
