"""Reading the times results.json files record (``environment.created_at``) as instants; imports no torch."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

CREATED_AT_PATTERN = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))"
)
"""RFC 3339 / ISO 8601 extended date-time with seconds and a UTC offset (``Z``, ``+01:00`` or ``+0100``)."""


def parse_created_at(text: object) -> datetime:
    """The instant an ``environment.created_at`` names, as an aware datetime (compare these, never the text).

    reportgen writes ISO 8601 in UTC with a ``Z`` ("2026-12-02T03:44:00Z", ``reportgen.runinfo.collect_run_info``);
    any RFC 3339 time is read ("2026-12-02T04:44:00+01:00", "+0100", fractional seconds, truncated to
    microseconds), the same on every Python version (``datetime.fromisoformat`` reads "Z" only from 3.11).
    Raises ValueError for a missing value, another format, or a time without an offset (its instant is unknown).
    """
    if not isinstance(text, str) or not text:
        raise ValueError("environment.created_at is missing")
    shown = repr(text[:40])
    found = CREATED_AT_PATTERN.fullmatch(text.strip())
    if found is None:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?", text.strip()):
            raise ValueError(f"environment.created_at {shown} has no UTC offset, so its instant is unknown")
        raise ValueError(f"environment.created_at {shown} is not an ISO 8601 time with a UTC offset")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = found.groups()
    offset = timedelta(0) if zulu else (1 if sign == "+" else -1) * timedelta(hours=int(off_h), minutes=int(off_m))
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        int((fraction or "0").ljust(6, "0")[:6]), tzinfo=timezone(offset))
    except ValueError as exc:  # a 13th month, a 61st second, an offset of 24 hours or more
        raise ValueError(f"environment.created_at {shown} is not a valid time: {exc}") from None
