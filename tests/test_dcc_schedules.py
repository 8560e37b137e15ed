"""DSP schedules (SR 5.1 Create, 5.2 Read, 5.3 Delete Schedule) on the simulated rig:
validation and its response codes, runs on the rig's virtual clock delivering
DSPScheduledMessage, deletion, ownership, and schedules surviving a restart."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest

from gbhil.dcc.delivery import MessageKind
from gbhil.dcc.emulator import EmulatorConfig
from gbhil.dcc.schedules import DEFAULT_START_TIME, SCHEDULE_CODES, Schedule
from gbhil.duis.model import Response, ResponseMessage, WebService
from gbhil.gbcs.frame import Cra
from gbhil.gbcs.message import decode_message, inspect_message
from tests.test_dcc_processing import ESME, GSME, Harness, edit, requires_conformance

pytestmark = requires_conformance

NON_DEVICE = WebService.NON_DEVICE
TEMPLATE = "5.3_DELETE_SCHEDULE_REQUEST_DUIS.XML"
NETWORK_DATA = ("<sr:DSPReadNetworkData><sr:StartDateOffset>-1</sr:StartDateOffset>"
                "<sr:StartTime>00:00:00Z</sr:StartTime><sr:EndDateOffset>0</sr:EndDateOffset>"
                "<sr:EndTime>00:00:00Z</sr:EndTime></sr:DSPReadNetworkData>")


def create_body(*, start: dt.date, frequency: str = "Daily", end: dt.date | None = None,
                time: str | None = "02:00:00Z", sr: str = "4.10", srv: str = "4.10",
                device: str = ESME, choice: str = NETWORK_DATA) -> str:
    return ("<sr:CreateSchedule>"
            f"<sr:ScheduleFrequency>{frequency}</sr:ScheduleFrequency>"
            f"<sr:ScheduleStartDate>{start.isoformat()}</sr:ScheduleStartDate>"
            + ("" if end is None else f"<sr:ScheduleEndDate>{end.isoformat()}</sr:ScheduleEndDate>")
            + ("" if time is None else
               f"<sr:ScheduleExecutionStartTime>{time}</sr:ScheduleExecutionStartTime>")
            + f"<sr:DSPScheduledServiceReference>{sr}</sr:DSPScheduledServiceReference>"
            f"<sr:DSPScheduledServiceReferenceVariant>{srv}</sr:DSPScheduledServiceReferenceVariant>"
            f"<sr:DeviceID>{device}</sr:DeviceID>{choice}</sr:CreateSchedule>")


class Schedules(Harness):
    def today(self) -> dt.date:
        return self.rig.clock.now().date()

    def request(self, srv: str, body: str, user: str = "supplier") -> Any:
        xml = edit(self.template(TEMPLATE, user=None if user == "supplier" else user),
                   sr=srv, srv=srv, body=body)
        return self.submit(NON_DEVICE, self.sign(xml, user))

    def create(self, user: str = "supplier", **kw: Any) -> Response:
        kw.setdefault("start", self.today() + dt.timedelta(days=1))
        answer = self.request("5.1", create_body(**kw), user)
        assert answer.status == 200, answer.body
        return self.checked(answer.body)

    def read(self, key: str, value: object, user: str = "supplier") -> Response:
        return self.checked(self.request(
            "5.2", f"<sr:ReadSchedule><sr:{key}>{value}</sr:{key}></sr:ReadSchedule>", user).body)

    def delete(self, key: str, value: object, user: str = "supplier") -> Response:
        return self.checked(self.request(
            "5.3", f"<sr:DeleteSchedule><sr:{key}>{value}</sr:{key}></sr:DeleteSchedule>",
            user).body)

    def until(self, when: dt.datetime) -> None:
        self.settle(max(0.0, (when - self.rig.clock.now()).total_seconds()))

    def runs(self) -> list[Response]:
        return [r for r in self.messages("supplier", MessageKind.RESPONSE)
                if isinstance(r.body, ResponseMessage) and r.body.other is not None
                and r.body.other.tag.endswith("DSPScheduledMessage")]


def schedule_id(response: Response) -> int:
    assert response.header.response_code == "I0", response.header.response_code
    assert isinstance(response.body, ResponseMessage) and response.body.other is not None
    assert response.body.other.tag.endswith("DSPScheduleID")
    return int(response.body.other.text or "")


def _child(element: Any, local: str) -> str:
    found = [c for c in element if c.tag.endswith("}" + local)]
    assert found, local
    return found[0].text or ""


@pytest.fixture()
def dcc() -> Any:
    harness = Schedules()
    yield harness
    harness.close()


def test_create_read_run_and_delete(dcc: Schedules) -> None:
    start = dcc.today() + dt.timedelta(days=1)
    sid = schedule_id(dcc.create(start=start))
    read = dcc.read("DSPScheduleID", sid)
    assert read.header.response_code == "I0"
    assert isinstance(read.body, ResponseMessage) and read.body.other is not None
    [entry] = list(read.body.other)
    assert _child(entry, "DSPScheduleID") == str(sid)
    details = next(c for c in entry if c.tag.endswith("DSPScheduleDetails"))
    assert _child(details, "ScheduleFrequency") == "Daily"
    assert _child(details, "DeviceID") == ESME

    first_due = dt.datetime.combine(start, dt.time(2, 0), tzinfo=dt.UTC)
    dcc.until(first_due - dt.timedelta(minutes=1))
    assert dcc.runs() == []  # nothing before its time
    dcc.until(first_due + dt.timedelta(days=1, minutes=10))
    runs = dcc.runs()
    assert len(runs) == 2
    assert {r.header.request_id for r in runs} and len({r.header.request_id for r in runs}) == 2
    for run, due in zip(runs, (first_due, first_due + dt.timedelta(days=1)), strict=True):
        assert run.header.response_code == "I0"
        assert run.header.response_date_time >= due
        assert run.header.request_id is not None and run.header.request_id.target == ESME
        assert isinstance(run.body, ResponseMessage)
        assert run.body.service_reference_variant == "4.10"
        other = run.body.other
        assert other is not None and _child(other, "DSPScheduleID") == str(sid)
        raw = base64.b64decode(_child(other, "GBCSPayload"))
        assert decode_message(raw).frame.gs.cra is Cra.RESPONSE
        assert inspect_message(raw).to_json()["header"]["useCase"] in ("ECS23", "ECS23b")

    assert dcc.delete("DSPScheduleID", sid).header.response_code == "I99"
    dcc.settle(3 * 86_400)
    assert len(dcc.runs()) == 2  # no run after the deletion
    assert dcc.read("DSPScheduleID", sid).header.response_code == SCHEDULE_CODES[
        "read.unknown_id"]
    assert dcc.delete("DSPScheduleID", sid).header.response_code == SCHEDULE_CODES[
        "delete.unknown_id"]


def test_read_and_delete_by_device_are_the_users_own(dcc: Schedules) -> None:
    ids = {schedule_id(dcc.create()), schedule_id(dcc.create(frequency="Weekly"))}
    read = dcc.read("DeviceID", ESME)
    assert isinstance(read.body, ResponseMessage) and read.body.other is not None
    assert {int(_child(e, "DSPScheduleID")) for e in read.body.other} == ids
    other = dcc.read("DeviceID", ESME, user="network_operator")
    assert other.header.response_code == SCHEDULE_CODES["read.none"]
    some = min(ids)
    assert dcc.read("DSPScheduleID", some, user="network_operator").header.response_code == \
        SCHEDULE_CODES["read.other_user"]
    assert dcc.delete("DSPScheduleID", some, user="network_operator").header.response_code == \
        SCHEDULE_CODES["delete.other_user"]
    assert dcc.delete("DeviceID", ESME).header.response_code == "I99"
    assert dcc.read("DeviceID", ESME).header.response_code == SCHEDULE_CODES["read.none"]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"start": "today"}, SCHEDULE_CODES["create.start_not_future"]),
        ({"end": "yesterday"}, SCHEDULE_CODES["create.end_before_start"]),
        ({"srv": "4.12.1", "sr": "4.12"}, SCHEDULE_CODES["create.body_mismatch"]),
        ({"srv": "4.14", "sr": "4.14"}, SCHEDULE_CODES["create.body_mismatch"]),
        ({"device": "00-DB-12-34-56-78-99-99"}, "E19"),
        ({"device": GSME, "srv": "4.12.1", "sr": "4.12",
          "choice": "<sr:DSPReadMaximumDemandImportRegisters/>"}, "E11"),
    ],
)
def test_create_is_refused_with_the_reason_code(dcc: Schedules, changes: dict[str, Any],
                                                code: str) -> None:
    start = dcc.today() + dt.timedelta(days=2)
    if changes.get("start") == "today":
        changes["start"] = dcc.today()
    if changes.get("end") == "yesterday":
        changes["end"] = start - dt.timedelta(days=1)
    answer = dcc.create(**{"start": start, **changes})
    assert answer.header.response_code == code
    assert dcc.emu.processor.schedules.schedules() == []


def test_a_service_that_cannot_be_scheduled_is_not_valid_duis(dcc: Schedules) -> None:
    body = create_body(start=dcc.today() + dt.timedelta(days=1), sr="4.1", srv="4.1.1")
    answer = dcc.request("5.1", body)
    assert answer.status == 400  # 4.1.1 is not a DSPScheduledServiceReferenceVariant


def test_roles_and_registration_are_checked(dcc: Schedules) -> None:
    # supplier2 is an IS registered for no rig device; the network operator is the ED.
    answer = dcc.create(user="supplier2")
    assert answer.header.response_code == "E4"
    assert dcc.create(user="network_operator").header.response_code == "I0"


def test_default_start_time_is_one_minute_past_midnight(dcc: Schedules) -> None:
    start = dcc.today() + dt.timedelta(days=1)
    schedule_id(dcc.create(start=start, time=None))
    [stored] = dcc.emu.processor.schedules.schedules()
    assert stored.start_time == DEFAULT_START_TIME
    assert stored.next_run() == dt.datetime.combine(start, dt.time(0, 1), tzinfo=dt.UTC)


def test_schedules_survive_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "dcc.sqlite")
    config = EmulatorConfig(duis_port=None, smki_port=None, store_path=db)
    first = Schedules(config=config, db_path=db)
    try:
        start = first.today() + dt.timedelta(days=1)
        sid = schedule_id(first.create(start=start))
    finally:
        first.rig.close()  # killed
    second = Schedules(config=config, db_path=db)
    second._counters = itertools.count(2_000_000)  # the DCC remembers the counters used
    try:
        read = second.read("DSPScheduleID", sid)
        assert read.header.response_code == "I0"
        # the second rig's clock starts where the first did: the run is still to come
        second.until(dt.datetime.combine(start, dt.time(2, 10), tzinfo=dt.UTC))
        [run] = second.runs()
        assert run.body.other is not None  # type: ignore[union-attr]
        assert _child(run.body.other, "DSPScheduleID") == str(sid)  # type: ignore[union-attr]
    finally:
        second.close()


@pytest.mark.parametrize(
    ("frequency", "start", "expected"),
    [
        ("Daily", dt.date(2024, 2, 28), [dt.date(2024, 2, 28), dt.date(2024, 2, 29),
                                         dt.date(2024, 3, 1)]),
        ("Weekly", dt.date(2024, 1, 1), [dt.date(2024, 1, 1), dt.date(2024, 1, 8),
                                         dt.date(2024, 1, 15)]),
        ("Monthly", dt.date(2023, 1, 31), [dt.date(2023, 1, 31), dt.date(2023, 2, 28),
                                           dt.date(2023, 3, 31)]),
        ("Quarterly", dt.date(2023, 11, 30), [dt.date(2023, 11, 30), dt.date(2024, 2, 29),
                                              dt.date(2024, 5, 30)]),
        ("Half-Yearly", dt.date(2023, 8, 31), [dt.date(2023, 8, 31), dt.date(2024, 2, 29),
                                               dt.date(2024, 8, 31)]),
        ("Yearly", dt.date(2024, 2, 29), [dt.date(2024, 2, 29), dt.date(2025, 2, 28),
                                          dt.date(2026, 2, 28)]),
    ],
)
def test_occurrences_follow_seed_003(frequency: str, start: dt.date,
                                     expected: list[dt.date]) -> None:
    schedule = Schedule(1, "90-B3-D5-1F-30-01-00-00", ESME, "4.10", frequency, start, None,
                        DEFAULT_START_TIME, b"<x/>")
    assert [schedule.occurrence(n).date() for n in range(3)] == expected
    assert schedule.occurrence(0).time() == dt.time(0, 1)


def test_a_schedule_ends_after_its_end_date() -> None:
    schedule = Schedule(1, "90-B3-D5-1F-30-01-00-00", ESME, "4.10", "Daily",
                        dt.date(2024, 1, 1), dt.date(2024, 1, 2), DEFAULT_START_TIME, b"<x/>")
    assert schedule.next_run() is not None
    assert Schedule(**{**_fields(schedule), "runs": 2}).next_run() is None


def _fields(schedule: Schedule) -> dict[str, Any]:
    return {name: getattr(schedule, name) for name in Schedule.__slots__}  # type: ignore[attr-defined]
