"""GSME calendars in the ZCL Calendar cluster (gas tariff switching, non-disablement).

A calendar is published as Publish Calendar, one Publish Day Profile per day, one Publish
Week Profile per week, Publish Seasons and Publish Special Days; the DSP acts as the
calendar server and uses its current time as issuer event and calendar id. ZCL dates are
year - 1900, month, day, day of week, 0xFF where unspecified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lxml import etree

from gbhil.dcc.transforms.base import (
    BuildContext,
    BuildError,
    Execution,
    When,
    Zcl,
    cluster_command,
    find,
    find_all,
    integer,
    le,
    seconds_2000,
    utc_le,
    zcl_string,
)

CALENDAR = 0x0707
PUBLISH_CALENDAR = 0x00
PUBLISH_DAY_PROFILE = 0x01
PUBLISH_WEEK_PROFILE = 0x02
PUBLISH_SEASONS = 0x03
PUBLISH_SPECIAL_DAYS = 0x04
#: Calendar types: delivered tariff, friendly credit (prepayment non-disablement).
CALENDAR_DELIVERED = 0x00
CALENDAR_FRIENDLY_CREDIT = 0x03
TIME_REFERENCE_UTC = 0x00
#: Calendar start time that cancels a pending calendar (RTDS GCS01a/GCS05 cancellations).
CALENDAR_CANCEL = 0xFFFFFFFE
ZCL_YEAR_BASE = 1900
ANY = 0xFF
DAYS_PER_WEEK = 7


def calendar_start(execution: Execution) -> int:
    if execution.when is When.NOW:
        return 0
    if execution.when is When.CANCEL:
        return CALENDAR_CANCEL
    assert execution.at is not None
    return seconds_2000(execution.at)


def _wild(parent: etree._Element, name: str) -> int:
    holder = find(parent, name)
    if holder is None:
        raise BuildError(f"date has no {name}")
    for child in holder:
        if not isinstance(child.tag, str):
            continue
        kind = etree.QName(child).localname
        if kind.startswith("NonSpecified"):
            return ANY
        if kind.startswith("Specified"):
            return int((child.text or "").strip())
    raise BuildError(f"{name} names no value")


def zcl_date(parent: etree._Element) -> bytes:
    """Gas*WithWildcards children as a ZCL date."""
    year = _wild(parent, "GasYearWithWildcards")
    return bytes(
        (
            ANY if year == ANY else year - ZCL_YEAR_BASE,
            _wild(parent, "GasMonthWithWildcards"),
            _wild(parent, "GasDayOfMonthWithWildcards"),
            _wild(parent, "GasDayOfWeekWithWildcards"),
        )
    )


def _head(ctx: BuildContext) -> bytes:
    """Provider id, issuer event id and issuer calendar id (the DSP's time)."""
    return le(0, 4, "provider id") + utc_le(ctx.now) + utc_le(ctx.now)


def publish_calendar(
    ctx: BuildContext, calendar_type: int, seasons: int, weeks: int, days: int
) -> Zcl:
    payload = (
        _head(ctx) + le(calendar_start(ctx.execution), 4, "start time")
        + bytes((calendar_type, TIME_REFERENCE_UTC)) + zcl_string(b"", "calendar name")
        + bytes((seasons, weeks, days))
    )
    return cluster_command(CALENDAR, PUBLISH_CALENDAR, payload, server=True)


def publish_day_profile(
    ctx: BuildContext, day_id: int, calendar_type: int, entries: Sequence[bytes]
) -> Zcl:
    payload = _head(ctx) + bytes((day_id, len(entries), 0, 1, calendar_type)) + b"".join(entries)
    return cluster_command(CALENDAR, PUBLISH_DAY_PROFILE, payload, server=True)


def week_profiles(ctx: BuildContext, path: str) -> tuple[list[Zcl], int]:
    """One Publish Week Profile per WeekProfile (WeekName, ReferencedDayName 1..7)."""
    parts = []
    for week in find_all(ctx.body, path):
        days = {int(e.get("index", "0")): int((e.text or "0").strip())
                for e in find_all(week, "ReferencedDayName")}
        if sorted(days) != list(range(1, DAYS_PER_WEEK + 1)):
            raise BuildError("a WeekProfile names a day profile for each of the 7 days")
        payload = _head(ctx) + bytes((integer(week, "WeekName"),)) + bytes(
            days[d] for d in range(1, DAYS_PER_WEEK + 1)
        )
        parts.append(cluster_command(CALENDAR, PUBLISH_WEEK_PROFILE, payload, server=True))
    return parts, len(parts)


def publish_seasons(ctx: BuildContext, path: str) -> tuple[Zcl, int]:
    seasons = find_all(ctx.body, path)
    entries = b"".join(
        zcl_date(_required(s, "SeasonStartDate")) + bytes((integer(s, "ReferencedWeekName"),))
        for s in seasons
    )
    payload = _head(ctx) + bytes((0, 1)) + entries
    return cluster_command(CALENDAR, PUBLISH_SEASONS, payload, server=True), len(seasons)


def publish_special_days(ctx: BuildContext, path: str, calendar_type: int) -> Zcl:
    days = find_all(ctx.body, path)
    entries = b"".join(
        zcl_date(_required(d, "Date")) + bytes((integer(d, "ReferencedDayName"),)) for d in days
    )
    payload = (
        _head(ctx) + le(calendar_start(ctx.execution), 4, "start time")
        + bytes((calendar_type, len(days), 0, 1)) + entries
    )
    return cluster_command(CALENDAR, PUBLISH_SPECIAL_DAYS, payload, server=True)


def _required(parent: etree._Element, name: str) -> etree._Element:
    element = find(parent, name)
    if element is None:
        raise BuildError(f"{etree.QName(parent).localname} has no {name}")
    return element


def publish_whole_calendar(
    ctx: BuildContext, calendar_type: int, day_paths: str,
    day_entries: Callable[[etree._Element], tuple[int, list[bytes]]],
    weeks: str, seasons: str, special_days: str,
) -> list[Zcl]:
    """Calendar, day profiles, week profiles, seasons and special days, in that order."""
    days = [day_entries(d) for d in find_all(ctx.body, day_paths)]
    week_parts, week_count = week_profiles(ctx, weeks)
    season_part, season_count = publish_seasons(ctx, seasons)
    return [
        publish_calendar(ctx, calendar_type, season_count, week_count, len(days)),
        *(publish_day_profile(ctx, day_id, calendar_type, entries) for day_id, entries in days),
        *week_parts,
        season_part,
        publish_special_days(ctx, special_days, calendar_type),
    ]
