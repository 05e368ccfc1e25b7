"""structlog set-up: JSON lines on stdout (or a console renderer for humans), one handler for every logger.

structlog renders through the standard library (structlog's documented "ProcessorFormatter" set-up), so our
loggers and the libraries' share one output and one level scheme: our own loggers (`modelreg.*`) log at
the configured level, libraries at WARNING unless the level is DEBUG (aiokafka, pymongo and uvicorn are
chatty at INFO).
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor

# Every logger the code creates is named under this one (structlog.get_logger("modelreg.worker"), ...).
OWN_LOGGER = "modelreg"


def library_level(level: str) -> int:
    """Libraries stay at WARNING (or the configured level when stricter), except when debugging."""
    own: int = logging.getLevelName(level)  # a level's name gives its number
    return own if own == logging.DEBUG else max(own, logging.WARNING)


def configure_logging(level: str = "INFO", fmt: str = "json", service: str | None = None) -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    shared_processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    if service:
        structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared_processors,  # records of libraries' standard-library loggers
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(library_level(level))
    logging.getLogger(OWN_LOGGER).setLevel(level)
