"""DSP schedules: SR 5.1 Create Schedule, 5.2 Read Schedule, 5.3 Delete Schedule.

A User asks the DCC to run one of the "DCC Scheduled" reads (the XSD's
``DSPScheduledServiceReferenceVariant``) on a device at a start date and time and then
Daily, Weekly, Monthly, Quarterly, Half-Yearly or Yearly until an optional end date
(seed 003, CreateSchedule data items: a monthly-type schedule runs on the start date's day
of the month, or the month's last day where that day does not exist; the start time
defaults to 00:01:00 UTC; start and end dates must lie in the future, end >= start).

Schedules live in SQLite, so they survive a restart, and are executed on the DCC's clock
(virtual time in simulation): each run becomes a device request whose read period is the
schedule's day offsets from the run date, and the device's answer reaches the User as a
``DSPScheduledMessage`` (GBCS payload + DSPScheduleID).

The meanings of the SR-specific codes (E050101..., W050201...) are not public; the reasons
gbhil refuses for are mapped to them in :data:`SCHEDULE_CODES`, which a rig may remap.
"""

from __future__ import annotations

import base64
import calendar
import dataclasses
import datetime as dt
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lxml import etree

from gbhil.dcc.store import open_store
from gbhil.duis.codes import SUCCESS
from gbhil.duis.model import (
    CommandVariant,
    DuisModelError,
    Request,
    RequestHeader,
    RequestID,
    Response,
    ResponseHeader,
    ResponseMessage,
    format_datetime,
    format_eui,
)
from gbhil.duis.schema import SR_NS

#: Scheduled SRV -> (CreateSchedule body element, the device request's body element). The
#: XSD 5.4 choice has these eight; its SRV enumeration also lists 4.2, 4.14-4.17 and 14.1,
#: whose bodies (DSPReadLoadLimitData...) only seed 003's table names: not schedulable here.
SCHEDULED_BODIES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "4.6.1": ("DSPRetrieveImportDailyReadLog", "RetrieveImportDailyReadLog"),
    "4.6.2": ("DSPRetrieveExportDailyReadLog", "RetrieveExportDailyReadLog"),
    "4.8.1": ("DSPReadActiveImportProfileData", "ReadActiveImportProfileData"),
    "4.8.2": ("DSPReadReactiveImportProfileData", "ReadReactiveImportProfileData"),
    "4.8.3": ("DSPReadExportProfileData", "ReadExportProfileData"),
    "4.10": ("DSPReadNetworkData", "ReadNetworkData"),
    "4.12.1": ("DSPReadMaximumDemandImportRegisters", "ReadMaximumDemandImportRegisters"),
    "4.12.2": ("DSPReadMaximumDemandExportRegisters", "ReadMaximumDemandExportRegisters"),
})
#: ScheduleFrequency -> (days, months) between runs.
FREQUENCIES: Mapping[str, tuple[int, int]] = MappingProxyType({
    "Daily": (1, 0),
    "Weekly": (7, 0),
    "Monthly": (0, 1),
    "Quarterly": (0, 3),
    "Half-Yearly": (0, 6),
    "Yearly": (0, 12),
})
#: ScheduleExecutionStartTime when the request has none (seed 003).
DEFAULT_START_TIME = dt.time(0, 1, tzinfo=dt.UTC)
#: DSPSchedulesRead holds at most this many schedules (XSD maxOccurs).
MAX_READ = 99
#: gbhil's reasons -> DUIS codes. Stand-ins: DUIS' texts for these codes are not public.
SCHEDULE_CODES: Mapping[str, str] = MappingProxyType({
    "create.body_mismatch": "E050101",
    "create.start_not_future": "E050102",
    "create.end_before_start": "E050103",
    "create.role": "E050105",
    "create.end_required": "E050107",
    "read.unknown_id": "E050201",
    "read.other_user": "E050202",
    "read.none": "W050201",
    "delete.unknown_id": "E050301",
    "delete.other_user": "E050302",
    "delete.none": "W050301",
})
#: User Roles that must give a ScheduleEndDate (seed 003: mandatory for OU only).
END_DATE_REQUIRED_ROLES = frozenset({"OU"})


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


class ScheduleError(Exception):
    """A 5.x request refused: ``key`` names the reason in :data:`SCHEDULE_CODES`."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Schedule:
    """One DSP schedule; ``details`` is the CreateSchedule element as received."""

    schedule_id: int
    user_id: str
    device_id: str
    srv: str
    frequency: str
    start_date: dt.date
    end_date: dt.date | None
    start_time: dt.time
    details: bytes
    #: Runs already made (the next run is occurrence number ``runs``).
    runs: int = 0

    @property
    def service_reference(self) -> str:
        return ".".join(self.srv.split(".")[:2])

    def occurrence(self, n: int) -> dt.datetime:
        """When run ``n`` (0 = the start date) is due."""
        days, months = FREQUENCIES[self.frequency]
        if months:
            total = self.start_date.month - 1 + n * months
            year, month = self.start_date.year + total // 12, total % 12 + 1
            day = min(self.start_date.day, calendar.monthrange(year, month)[1])
            date = dt.date(year, month, day)
        else:
            date = self.start_date + dt.timedelta(days=n * days)
        return dt.datetime.combine(date, self.start_time.replace(tzinfo=None), tzinfo=dt.UTC)

    def next_run(self) -> dt.datetime | None:
        """The next due time, None once the end date is past."""
        at = self.occurrence(self.runs)
        if self.end_date is not None and at.date() > self.end_date:
            return None
        return at

    def element(self) -> etree._Element:
        return etree.fromstring(self.details)

    def device_request(self, counter: int, at: dt.datetime) -> Request:
        """The device request of the run due ``at``: the read period is the schedule's day
        offsets from the run date (at StartTime/EndTime), as a ReadLogPeriod."""
        dsp_name, body_name = SCHEDULED_BODIES[self.srv]
        source = self.element().find(_sr(dsp_name))
        body = etree.Element(_sr(body_name), nsmap={"sr": SR_NS})
        if source is not None and len(source):
            period = etree.SubElement(body, _sr("ReadLogPeriod"))
            for edge in ("Start", "End"):
                offset = int(_text(source, f"{edge}DateOffset"))
                time = dt.time.fromisoformat(_text(source, f"{edge}Time").removesuffix("Z"))
                when = dt.datetime.combine(at.date() + dt.timedelta(days=offset),
                                           time.replace(tzinfo=None), tzinfo=dt.UTC)
                etree.SubElement(period, _sr(f"{edge}DateTime")).text = format_datetime(when)
        header = RequestHeader(RequestID(self.user_id, self.device_id, counter),
                               CommandVariant.SEND, self.service_reference, self.srv)
        return Request(header, body)

    def read_element(self) -> etree._Element:
        """``sr:DSPSchedules`` for 5.2."""
        element = etree.Element(_sr("DSPSchedules"), nsmap={"sr": SR_NS})
        etree.SubElement(element, _sr("DSPScheduleID")).text = str(self.schedule_id)
        details = self.element()
        details.tag = _sr("DSPScheduleDetails")
        element.append(details)
        return element


def _text(parent: etree._Element, local: str) -> str:
    found = parent.find(_sr(local))
    if found is None or not (found.text or "").strip():
        raise ScheduleError("create.body_mismatch", f"{local} is missing")
    return (found.text or "").strip()


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text.removesuffix("Z")[:10])


def parse_create(request: Request, roles: frozenset[str], now: dt.datetime) -> Schedule:
    """Check a CreateSchedule body (not the device: the caller checks E19/E4/E11)."""
    body = request.body
    srv = _text(body, "DSPScheduledServiceReferenceVariant")
    sr = _text(body, "DSPScheduledServiceReference")
    expected = SCHEDULED_BODIES.get(srv)
    if expected is None or ".".join(srv.split(".")[:2]) != sr or body.find(
            _sr(expected[0])) is None:
        raise ScheduleError("create.body_mismatch",
                            f"SR {sr} / SRV {srv} with this body cannot be DSP scheduled")
    start = _date(_text(body, "ScheduleStartDate"))
    today = now.astimezone(dt.UTC).date()
    if start <= today:
        raise ScheduleError("create.start_not_future", f"start date {start} is not after {today}")
    end_element = body.find(_sr("ScheduleEndDate"))
    end = None if end_element is None else _date(end_element.text or "")
    if end is not None and end < start:
        raise ScheduleError("create.end_before_start", f"end date {end} is before {start}")
    if end is None and roles and roles <= END_DATE_REQUIRED_ROLES:
        raise ScheduleError("create.end_required", "an Other User's schedule needs an end date")
    time_element = body.find(_sr("ScheduleExecutionStartTime"))
    start_time = DEFAULT_START_TIME
    if time_element is not None and (time_element.text or "").strip():
        parsed = dt.time.fromisoformat((time_element.text or "").strip().removesuffix("Z"))
        start_time = parsed.replace(tzinfo=dt.UTC, microsecond=0)
    try:
        device = format_eui(_text(body, "DeviceID"))
    except DuisModelError as exc:
        raise ScheduleError("create.body_mismatch", str(exc)) from None
    return Schedule(0, request.header.business_originator_id, device, srv,
                    _text(body, "ScheduleFrequency"), start, end, start_time,
                    etree.tostring(body))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS dcc_schedule (
    schedule_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    srv TEXT NOT NULL,
    frequency TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT,
    start_time TEXT NOT NULL,
    details BLOB NOT NULL,
    runs INTEGER NOT NULL DEFAULT 0
);
"""


class ScheduleStore:
    """The schedules table: a created schedule survives a restart (gbhil.dcc.store)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._lock = threading.Lock()
        self._conn = open_store(path, _SCHEMA)

    def add(self, s: Schedule) -> Schedule:
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO dcc_schedule (user_id, device_id, srv, frequency, start_date, "
                "end_date, start_time, details, runs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (s.user_id, s.device_id, s.srv, s.frequency, s.start_date.isoformat(),
                 None if s.end_date is None else s.end_date.isoformat(),
                 s.start_time.isoformat(), s.details, s.runs))
        return dataclasses.replace(s, schedule_id=int(cursor.lastrowid or 0))

    def set_runs(self, schedule_id: int, runs: int) -> None:
        with self._lock:
            self._conn.execute("UPDATE dcc_schedule SET runs = ? WHERE schedule_id = ?",
                               (runs, schedule_id))

    def delete(self, schedule_id: int) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM dcc_schedule WHERE schedule_id = ?", (schedule_id,))

    def all(self) -> list[Schedule]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT schedule_id, user_id, device_id, srv, frequency, start_date, end_date, "
                "start_time, details, runs FROM dcc_schedule ORDER BY schedule_id").fetchall()
        return [Schedule(r[0], r[1], r[2], r[3], r[4], dt.date.fromisoformat(r[5]),
                         None if r[6] is None else dt.date.fromisoformat(r[6]),
                         dt.time.fromisoformat(r[7]), bytes(r[8]), r[9]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


Run = Callable[[Schedule, dt.datetime], None]


class DspSchedules:
    """The stored schedules and their timers on ``clock``; ``run(schedule, due)`` executes
    one occurrence (the processor turns it into a device request)."""

    def __init__(self, path: str | os.PathLike[str], clock: Any, run: Run) -> None:
        self.clock = clock
        self.run = run
        self._store = ScheduleStore(path)
        self._schedules: dict[int, Schedule] = {s.schedule_id: s for s in self._store.all()}
        self._timers: dict[int, Any] = {}
        self._started = False

    def start(self) -> None:
        """Arm every stored schedule (after a restart: runs missed while down are skipped)."""
        if self._started:
            return
        self._started = True
        now = self.clock.now()
        for schedule in list(self._schedules.values()):
            runs = schedule.runs
            while (due := dataclasses.replace(schedule, runs=runs).next_run()) is not None \
                    and due < now:
                runs += 1
            if runs != schedule.runs:
                schedule = self._set_runs(schedule, runs)
            self._arm(schedule)

    def _set_runs(self, schedule: Schedule, runs: int) -> Schedule:
        schedule = dataclasses.replace(schedule, runs=runs)
        self._store.set_runs(schedule.schedule_id, runs)
        self._schedules[schedule.schedule_id] = schedule
        return schedule

    def _arm(self, schedule: Schedule) -> None:
        due = schedule.next_run()
        if due is None:
            self._remove(schedule.schedule_id)  # past its end date
            return
        if self._started:
            self._timers[schedule.schedule_id] = self.clock.call_at(due, self._fire,
                                                                     schedule.schedule_id, due)

    def _fire(self, schedule_id: int, due: dt.datetime) -> None:
        self._timers.pop(schedule_id, None)
        schedule = self._schedules.get(schedule_id)
        if schedule is None:
            return
        schedule = self._set_runs(schedule, schedule.runs + 1)  # before running: at most once
        try:
            self.run(schedule, due)
        finally:
            if schedule_id in self._schedules:
                self._arm(schedule)

    def _remove(self, schedule_id: int) -> None:
        timer = self._timers.pop(schedule_id, None)
        if timer is not None:
            timer.cancel()
        self._schedules.pop(schedule_id, None)
        self._store.delete(schedule_id)

    # --- the three services ------------------------------------------------------------------

    def create(self, schedule: Schedule) -> Schedule:
        self.start()  # a processor used without an emulator start still runs its schedules
        schedule = self._store.add(schedule)
        self._schedules[schedule.schedule_id] = schedule
        self._arm(schedule)
        return schedule

    def select(self, body: etree._Element, user_id: str, what: str) -> list[Schedule]:
        """The User's schedules a 5.2/5.3 body names (``what``: "read" or "delete")."""
        found = body.find(_sr("DSPScheduleID"))
        if found is not None:
            schedule = self._schedules.get(int((found.text or "0").strip()))
            if schedule is None:
                raise ScheduleError(f"{what}.unknown_id", f"no DSP schedule {found.text}")
            if schedule.user_id != user_id:
                raise ScheduleError(f"{what}.other_user",
                                    f"schedule {schedule.schedule_id} belongs to another User")
            return [schedule]
        device = format_eui(_text(body, "DeviceID"))
        return [s for s in self._schedules.values()
                if s.device_id == device and s.user_id == user_id]

    def delete(self, schedules: list[Schedule]) -> None:
        for schedule in schedules:
            self._remove(schedule.schedule_id)

    def schedules(self, user_id: str | None = None) -> list[Schedule]:
        return [s for s in self._schedules.values() if user_id in (None, s.user_id)]

    def read_element(self, schedules: list[Schedule]) -> etree._Element:
        element = etree.Element(_sr("DSPSchedulesRead"), nsmap={"sr": SR_NS})
        for schedule in schedules[:MAX_READ]:
            element.append(schedule.read_element())
        return element

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._store.close()


def scheduled_response(request: Request, raw: bytes, schedule_id: int, *,
                       at: dt.datetime) -> Response:
    """A run's answer: ``sr:DSPScheduledMessage`` (the device's GBCS response and the
    schedule it ran for), ResponseID responder-first as for any device response."""
    header = request.header
    return Response(
        ResponseHeader(SUCCESS, at, request_id=header.request_id,
                       response_id=header.request_id.response_id()),
        ResponseMessage(header.service_reference, header.service_reference_variant,
                        other=scheduled_message(raw, schedule_id)))


def scheduled_message(raw: bytes, schedule_id: int) -> etree._Element:
    """``sr:DSPScheduledMessage``: the device's GBCS response and the schedule it ran for."""
    element = etree.Element(_sr("DSPScheduledMessage"), nsmap={"sr": SR_NS})
    etree.SubElement(element, _sr("GBCSPayload")).text = base64.b64encode(raw).decode()
    etree.SubElement(element, _sr("DSPScheduleID")).text = str(schedule_id)
    return element


__all__ = [
    "DEFAULT_START_TIME",
    "FREQUENCIES",
    "SCHEDULED_BODIES",
    "SCHEDULE_CODES",
    "DspSchedules",
    "Schedule",
    "ScheduleError",
    "parse_create",
    "scheduled_message",
    "scheduled_response",
]
