"""Smoke suite: one HIL test per fixture, each the pattern a suite follows.

Every test names its GBCS use case and DUIS SRV (``usecase``, ``srv``), asks for the
parts of the rig it drives (fixtures) and for capabilities a rig may lack (``needs``),
and asserts on what the DCC User sees: acknowledgements, responses and alerts by
RequestID. Nothing here knows whether the rig is simulated.
"""

from __future__ import annotations

import pytest

from gbhil.devices.core import Device
from gbhil.devices.trust import Role
from gbhil.duis.codes import ACKNOWLEDGED
from gbhil.duis.model import Response, format_eui
from gbhil.gbcs.frame import Cra
from gbhil.gbcs.message import decode_message, inspect_message
from gbhil.gbcs.security import Check
from gbhil.pytest_plugin import needs, srv, usecase
from gbhil.pytest_plugin.plugin import DccClient, DccRefused, HanView, Hht, Mains, VirtualClock

#: Pages of the GB HAN (IEEE 802.15.4 channel pages).
PAGE_2_4_GHZ = 0
PAGE_SUB_GHZ = 28
#: GBCS alert codes of ECS80 (Supply Outage Restore Alert): outage under / at least 3 min.
RESTORED_UNDER_3_MIN = 0x8F35
RESTORED_AFTER_3_MIN = 0x8F36
#: GBCS message code of ECS80 and the DCC alert code of a power outage of 3 minutes or more.
ECS80_MESSAGE_CODE = 0x0067
POWER_OUTAGE = "AD1"
#: An EUI-64 the DCC's inventory does not know.
UNKNOWN_DEVICE = "00-DB-12-34-56-78-90-FF"


def _originator(dcc: DccClient, response: Response) -> str:
    return str(dcc.describe(response)["header"]["businessOriginatorId"])


@usecase("ECS52")
@srv("11.2")
@needs("2.4ghz")
def test_esme_firmware_version_over_the_han(dcc: DccClient, esme: Device, han: HanView) -> None:
    submission = dcc.submit(dcc.request("11.2", esme))

    assert submission.await_ack().header.response_code == ACKNOWLEDGED
    summary = dcc.describe(submission.await_response())
    assert summary["header"]["businessOriginatorId"] == format_eui(esme.eui)
    assert summary["outcome"]["success"] is True
    assert han.frames_on(PAGE_2_4_GHZ), "the command went through the ESME's HAN tunnel"


@usecase("ECS52")
@srv("11.2")
def test_chf_firmware_version(dcc: DccClient, chf: Device) -> None:
    submission = dcc.submit(dcc.request("11.2", chf))

    response = submission.await_response()
    assert _originator(dcc, response) == format_eui(chf.eui)
    assert dcc.describe(response)["outcome"]["success"] is True


@usecase("CS08")
@srv("11.2")
def test_ppmid_firmware_version_through_the_acb(dcc: DccClient, ppmid: Device) -> None:
    """CS08 goes out from the ACB on the User's behalf; the response still finds the User."""
    submission = dcc.submit(dcc.request("11.2", ppmid))

    summary = dcc.describe(submission.await_response())
    assert summary["header"]["businessOriginatorId"] == format_eui(ppmid.eui)
    assert summary["header"]["supplementaryRemotePartyId"] == dcc.user_eui(Role.SUPPLIER)
    assert summary["outcome"]["success"] is True


@usecase("GCS13a")
@srv("4.1.1")
def test_gpf_answers_gas_reads_from_its_mirror(dcc: DccClient, gpf: Device) -> None:
    submission = dcc.submit(dcc.request("4.1.1", gpf))

    response = submission.await_response()
    assert _originator(dcc, response) == format_eui(gpf.eui)
    assert dcc.describe(response)["outcome"]["success"] is True


@usecase("GCS38")
@srv("11.2")
@needs("subghz")
def test_gsme_read_waits_for_the_wake_cycle(
    dcc: DccClient, gsme: Device, han: HanView, clock: VirtualClock,
    capabilities: frozenset[str],
) -> None:
    submitted = clock.now()
    submission = dcc.submit(dcc.request("11.2", gsme))

    response = submission.await_response()
    assert _originator(dcc, response) == format_eui(gsme.eui)
    assert response.header.response_date_time > submitted, "answered at a later wake"
    if "capture" in capabilities:  # a real stick does not say which PHY carried a frame
        assert han.frames_on(PAGE_SUB_GHZ), "the GSME talks on the sub-GHz page"


@usecase("ECS52")
@srv("11.2")
def test_hht_delivers_a_local_command(dcc: DccClient, hht: Hht, esme: Device) -> None:
    """CV 2: the DCC returns the command instead of sending it; the HHT takes it over the HAN."""
    submission = dcc.submit(dcc.request("11.2", esme, cv=2))
    submission.await_response()
    local = submission.local_command
    assert local is not None and submission.command is None, "nothing went over the WAN"

    result = hht.deliver(local)

    assert not result.timed_out and result.response is not None
    header = decode_message(result.response).frame.gs
    assert header.cra is Cra.RESPONSE and header.business_originator == esme.eui


@usecase("ECS80")
@needs("psu")
def test_mains_cut_of_4_minutes_raises_ecs80_and_ad1(
    psu: Mains, dcc: DccClient, chf: Device
) -> None:
    psu.cut(4 * 60)

    [restored] = dcc.await_alerts(code=RESTORED_AFTER_3_MIN, user=Role.NETWORK_OPERATOR)
    assert decode_message(restored.gbcs or b"").frame.gs.message_code == ECS80_MESSAGE_CODE
    # AD1 (seed 004 5.9.4): one per meter point of the hub to its supplier
    outages = dcc.await_alerts(2, code=POWER_OUTAGE, user=Role.SUPPLIER)
    events = [a.response.body.body for a in outages]  # type: ignore[union-attr]
    assert {e.comms_hub_device_id for e in events} == {format_eui(chf.eui)}
    assert len({e.mpxn for e in events}) == 2, "the ESME's and the GSME's meter points"


@usecase("ECS80")
@needs("psu")
def test_mains_cut_under_3_minutes_raises_no_ad1(psu: Mains, dcc: DccClient) -> None:
    psu.cut(2 * 60)

    dcc.await_alerts(code=RESTORED_UNDER_3_MIN, user=Role.NETWORK_OPERATOR)
    assert not [a for a in dcc.alerts if a.code in (POWER_OUTAGE, f"{RESTORED_AFTER_3_MIN:04X}")]


@usecase("ECS42")
@srv("7.1")
def test_critical_command_carries_the_users_signature(dcc: DccClient, esme: Device) -> None:
    """CV 4 returns the pre-command; the User signs it and sends it back with CV 5."""
    pre = dcc.submit(dcc.request("7.1", esme, body="<sr:EnableSupply/>", cv=4))
    assert pre.pre_command is not None

    submission = dcc.submit_signed(pre)

    assert submission.await_ack().header.response_code == ACKNOWLEDGED
    assert dcc.describe(submission.await_response())["outcome"]["success"] is True
    sent = inspect_message(submission.command or b"", dcc.security)
    assert (sent.signature, sent.mac) == (Check.VERIFIED, Check.VERIFIED)


@usecase("ECS42")
@srv("7.1")
def test_critical_command_without_a_pre_command_is_refused_with_e12(
    dcc: DccClient, esme: Device
) -> None:
    submission = dcc.submit(dcc.request("7.1", esme, body="<sr:EnableSupply/>", cv=1))

    assert submission.await_ack().header.response_code == "E12"
    assert submission.command is None


@srv("11.2")
def test_unknown_device_is_refused_with_e19(dcc: DccClient) -> None:
    submission = dcc.submit(dcc.request("11.2", UNKNOWN_DEVICE))

    assert submission.await_ack().header.response_code == "E19"
    with pytest.raises(DccRefused):
        submission.await_response()


@needs("psu_real")
def test_bench_psu_identifies_itself(psu: Mains) -> None:
    """Runs on bench rigs only; the simulated rig skips it, naming the missing capability."""
    identity = psu.supply.identify()
    assert identity.model
