"""DLMS calendars shared by prepayment non-disablement and auxiliary load schedules.

GBCS drives time switching on the ESME with a special days table (class 11) and a
schedule (class 10) whose entries run a script of a script table. DUIS dates come in two
shapes: xs:date with year 65535 as "any year", or Year/Month/DayOfMonth/DayOfWeek with
Specified*/NonSpecified* children; both become the 5-byte DLMS date (0xFF(FF) wildcards,
0xFE/0xFD last and second-last day of the month).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from lxml import etree

from gbhil.dcc.transforms.base import BuildError, find, find_all, time_field
from gbhil.gbcs.axdr import Array, BitString, Boolean, OctetString, Structure, Uint8, Uint16

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ANY_YEAR = 0xFFFF
ANY = 0xFF
LAST_DAY = 0xFE
SECOND_LAST_DAY = 0xFD
#: xs:date year DUIS uses for "every year".
XS_ANY_YEAR = 65535
#: Schedule entry validity window: always (minutes, 0xFFFF).
ALWAYS = 0xFFFF
_XS_DATE = re.compile(r"(\d{4,5})-(\d{2})-(\d{2})(?:Z|[+-]\d{2}:\d{2})?")


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _choice(parent: etree._Element, name: str, *, wildcard: int) -> int:
    holder = find(parent, name)
    if holder is None:
        raise BuildError(f"date has no {name}")
    for child in holder:
        if not isinstance(child.tag, str):
            continue
        kind = _local(child)
        if kind.startswith("NonSpecified"):
            return wildcard
        if kind == "LastDayOfMonth":
            return LAST_DAY
        if kind == "SecondLastDayOfMonth":
            return SECOND_LAST_DAY
        if kind.startswith("Specified"):
            return int((child.text or "").strip())
    raise BuildError(f"{name} names no value")


def dlms_date(parent: etree._Element) -> bytes:
    """Year/Month/DayOfMonth/DayOfWeek children of ``parent`` as a DLMS date."""
    year = _choice(parent, "Year", wildcard=ANY_YEAR)
    return year.to_bytes(2, "big") + bytes(
        (
            _choice(parent, "Month", wildcard=ANY),
            _choice(parent, "DayOfMonth", wildcard=ANY),
            _choice(parent, "DayOfWeek", wildcard=ANY),
        )
    )


def xs_date(raw: str) -> bytes:
    """xs:date (year 65535 = any year) as a DLMS date with the day of week unspecified."""
    m = _XS_DATE.fullmatch(raw.strip())
    if m is None:
        raise BuildError(f"{raw!r} is not a date")
    year, month, day = (int(g) for g in m.groups())
    if year == XS_ANY_YEAR:
        year = ANY_YEAR
    return year.to_bytes(2, "big") + bytes((month, day, ANY))


def dlms_time(parent: etree._Element, path: str) -> bytes:
    when = time_field(parent, path)
    return bytes((when.hour, when.minute, when.second, when.microsecond // 10000))


def weekdays(parent: etree._Element) -> BitString:
    """exec_weekdays: 7 bits, Monday first."""
    days = {
        (e.text or "").strip()
        for e in find_all(parent, "DaysOfWeekApplicability/DayOfWeekApplicability/DayOfWeekID")
    }
    unknown = days - set(WEEKDAYS)
    if unknown:
        raise BuildError(f"unknown days of week {sorted(unknown)}")
    return bits([d in days for d in WEEKDAYS])


def bits(flags: Sequence[bool]) -> BitString:
    """A bit-string, first flag in the most significant bit."""
    value = 0
    for flag in flags:
        value = value << 1 | int(flag)
    size = (len(flags) + 7) // 8
    value <<= size * 8 - len(flags)
    return BitString(len(flags), value.to_bytes(size, "big"))


def special_days_bits(applies: Iterable[int], count: int) -> BitString:
    """exec_specdays: one bit per special day of the table, day 1 first."""
    chosen = set(applies)
    if any(not 1 <= d <= count for d in chosen):
        raise BuildError(f"a schedule names special day(s) {sorted(chosen)} of {count}")
    return bits([d in chosen for d in range(1, count + 1)])


def special_day_table(dates: Sequence[tuple[int, bytes]]) -> Array:
    """Class 11 entries: index, date, day id (= the index)."""
    return Array(tuple(Structure((Uint16(i), OctetString(d), Uint8(i))) for i, d in dates))


def indexed(elements: Iterable[etree._Element], attribute: str) -> list[tuple[int, etree._Element]]:
    """Elements with their numeric ``attribute`` (index / identifier), sorted."""
    out = []
    for e in elements:
        raw = e.get(attribute)
        if raw is None or not raw.isdigit():
            raise BuildError(f"{_local(e)} has no {attribute}")
        out.append((int(raw), e))
    return sorted(out, key=lambda pair: pair[0])


def schedule_entry(
    number: int, script: bytes, selector: int, switch_time: bytes, days: BitString,
    special: BitString, begin: bytes, end: bytes,
) -> Structure:
    """One class 10 schedule entry (enabled, always valid)."""
    return Structure(
        (
            Uint16(number), Boolean(True), OctetString(script), Uint16(selector),
            OctetString(switch_time), Uint16(ALWAYS), days, special,
            OctetString(begin), OctetString(end),
        )
    )
