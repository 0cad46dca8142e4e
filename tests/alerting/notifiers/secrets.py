"""The one check that a notifier never shows a secret, used by every notifier's tests.

    assert_no_secret("s3cret", config=config, notifier=notifier, caplog=caplog, errors=[error])

It looks wherever a secret could surface for an operator: the config's
``repr``/``str``/``model_dump``/``model_dump_json`` (what the API and
debug logs print), ``describe()``, every :class:`DeliveryError` raised
against a failing server (message, ``repr`` and formatted traceback, so a
chained exception carrying the URL counts too), and every log record
captured, from any logger (``httpx`` logs request URLs at INFO).
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterable, Sequence

import pytest
from pydantic import BaseModel

from trm_otel.alerting.model import Notifier

__all__ = ["assert_no_secret"]


def _record_text(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        text += "".join(traceback.format_exception(record.exc_info[1]))
    return text


def assert_no_secret(
    secret: str | Sequence[str],
    *,
    config: BaseModel,
    notifier: Notifier,
    caplog: pytest.LogCaptureFixture,
    errors: Iterable[BaseException],
) -> None:
    """Fail naming every place where any of ``secret`` appears.

    ``errors`` must not be empty: a check that never saw the failure path
    proves nothing about it.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    assert all(secrets), "an empty secret matches everything"
    errors = list(errors)
    assert errors, "pass the DeliveryErrors raised against a failing server"
    places: dict[str, str] = {
        "repr(config)": repr(config),
        "str(config)": str(config),
        "config.model_dump()": repr(config.model_dump()),
        "config.model_dump(mode='json')": json.dumps(config.model_dump(mode="json")),
        "config.model_dump_json()": config.model_dump_json(),
        "notifier.describe()": notifier.describe(),
        "repr(notifier)": repr(notifier),
    }
    for index, error in enumerate(errors):
        places[f"str(errors[{index}])"] = str(error)
        places[f"repr(errors[{index}])"] = repr(error)
        places[f"traceback of errors[{index}]"] = "".join(traceback.format_exception(error))
    for index, record in enumerate(caplog.records):
        places[f"log record {index} ({record.name})"] = _record_text(record)
    leaks = [f"{where}: {text!r}" for where, text in places.items() for s in secrets if s in text]
    assert not leaks, "secret shown in:\n" + "\n".join(leaks)
