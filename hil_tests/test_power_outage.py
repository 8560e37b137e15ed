"""Power outage suite: the mains to the CHF and ESME cut by the PSU (seed 004 5.9.4).

An outage under 3 minutes gives only the ESME's ECS80 0x8F35; 3 minutes or more gives the
ESME's 0x8F36 and, from the DCC, one AD1 PowerOutageEvent per User (IS/ED of the ESME,
GS/GT of the GSME) and meter point of the hub. A burst of restorations exercises alert
throttling (SECMP0062). Assertions are on what the DCC Users receive.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gbhil.devices.core import Device
from gbhil.devices.trust import Role
from gbhil.duis.model import PowerOutageEvent, format_eui
from gbhil.pytest_plugin import needs, srv, usecase
from gbhil.pytest_plugin.plugin import Alert, DccClient, Mains, VirtualClock

#: GBCS alert codes of ECS80 (Supply Outage Restore Alert): outage under / at least 3 min.
RESTORED_UNDER_3_MIN = 0x8F35
RESTORED_AFTER_3_MIN = 0x8F36
#: The DCC alert code of a comms hub power outage of 3 minutes or more.
POWER_OUTAGE = "AD1"
#: Throttling starts once more than this many alerts of one code reach one User in 60 s.
THROTTLE_THRESHOLD = 10


def _outage_event(alert: Alert) -> PowerOutageEvent:
    event = alert.response.body.body  # type: ignore[union-attr]
    assert isinstance(event, PowerOutageEvent)
    return event


def _ecs80_times(dcc: DccClient, alert: Alert) -> tuple[datetime, datetime]:
    """(outage start, restoration) from the ECS80 payload."""
    fields = dcc.describe(alert)["payload"]["body"]["structure"]
    return (
        datetime.fromisoformat(fields[2]["date-time"].replace("Z", "+00:00")),
        datetime.fromisoformat(fields[3]["date-time"].replace("Z", "+00:00")),
    )


@usecase("ECS80")
@needs("psu")
def test_outage_under_3_minutes_raises_0x8f35_and_no_ad1(psu: Mains, dcc: DccClient) -> None:
    """Negative: 2 minutes off is not a power outage event for the DCC."""
    psu.cut(2 * 60)

    [restored] = dcc.await_alerts(code=RESTORED_UNDER_3_MIN, user=Role.NETWORK_OPERATOR)
    assert dcc.describe(restored)["alertCode"] == "0x8F35"
    assert dcc.watch_alerts(5 * 60, code=POWER_OUTAGE) == []
    assert not [a for a in dcc.alerts if a.code in (POWER_OUTAGE, f"{RESTORED_AFTER_3_MIN:04X}")]


@usecase("ECS80")
@needs("psu")
def test_outage_of_3_minutes_or_more_sends_ad1_to_every_user_of_the_meters(
    psu: Mains, dcc: DccClient, clock: VirtualClock, chf: Device
) -> None:
    started = clock.now()
    psu.cut(4 * 60)

    outages = dcc.await_alerts(4, code=POWER_OUTAGE)
    recipients = {(a.user, _outage_event(a).mpxn) for a in outages}
    users = {dcc.user(Role.SUPPLIER).user_id, dcc.user(Role.NETWORK_OPERATOR).user_id}
    mpxns = {_outage_event(a).mpxn for a in outages}
    assert len(mpxns) == 2, "the ESME's MPAN and the GSME's MPRN"
    assert recipients == {(u, m) for u in users for m in mpxns}, "IS/GS and ED/GT, per meter point"
    for alert in outages:
        event = _outage_event(alert)
        assert event.comms_hub_device_id == format_eui(chf.eui)
        assert abs(event.start_date_time - started) < timedelta(seconds=1), "when power went"
        assert alert.at - started >= timedelta(minutes=3), "only after 3 minutes off"


@usecase("ECS80")
@needs("psu")
def test_outage_exactly_3_minutes_counts_as_long(psu: Mains, dcc: DccClient) -> None:
    psu.cut(3 * 60)

    dcc.await_alerts(code=RESTORED_AFTER_3_MIN, user=Role.NETWORK_OPERATOR)
    assert len(dcc.await_alerts(2, code=POWER_OUTAGE, user=Role.SUPPLIER)) == 2


@usecase("ECS80", "ECS52")
@srv("11.2")
@needs("psu")
def test_restoration_reports_the_outage_and_the_esme_answers_again(
    psu: Mains, dcc: DccClient, clock: VirtualClock, esme: Device
) -> None:
    started = clock.now()
    psu.cut(4 * 60)

    [restored] = dcc.await_alerts(code=RESTORED_AFTER_3_MIN, user=Role.NETWORK_OPERATOR)
    summary = dcc.describe(restored)
    assert summary["header"]["useCase"] == "ECS80"
    assert summary["header"]["businessOriginatorId"] == format_eui(esme.eui)
    assert summary["header"]["businessTargetId"] == dcc.user(Role.NETWORK_OPERATOR).user_id
    went, back = _ecs80_times(dcc, restored)
    assert abs(went - started) < timedelta(seconds=1)
    # the supply's 4 minutes as the meter measured them: a bench PSU (or a rig whose meter
    # hears the mains switch over a bus) switches within milliseconds, not to the tick
    assert abs(back - went - timedelta(minutes=4)) < timedelta(seconds=1)
    # restored: the meter is reachable again
    response = dcc.submit(dcc.request("11.2", esme)).await_response()
    assert dcc.describe(response)["outcome"]["success"] is True


@usecase("ECS80")
@needs("psu")
def test_burst_of_restorations_is_throttled(psu: Mains, dcc: DccClient) -> None:
    """SECMP0062: more than 10 0x8F35 to one User within 60 s are consolidated."""
    for _ in range(THROTTLE_THRESHOLD + 4):
        psu.cut(1, settle=2)
    dcc.watch_alerts(2 * 60)

    alerts = [a for a in dcc.alerts if a.code == f"{RESTORED_UNDER_3_MIN:04X}"]
    bodies = [a.response.body for a in alerts]
    plain = [b for b in bodies if b.throttled_alert_count is None]  # type: ignore[union-attr]
    throttled = [b for b in bodies if b.throttled_alert_count is not None]  # type: ignore[union-attr]
    assert len(plain) == THROTTLE_THRESHOLD, "the first 10 go out as they come"
    assert throttled, "then throttling starts"
    assert [b.throttled_alert_sequence_id for b in throttled] == list(  # type: ignore[union-attr]
        range(1, len(throttled) + 1)
    )
    assert sum(b.throttled_alert_count for b in throttled) == 4  # type: ignore[union-attr,misc]
    assert len(throttled) < 4, "consolidated, not one per alert"
