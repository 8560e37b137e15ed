"""Dual band suite: SR 6.28-6.32 (DBCH01-05) on the CHF's sub-GHz configuration.

6.28 masks must use at least two channels on each Lower Band page they use (seed 003,
E062802). Requests go to the CHF through the ACB on the User's behalf. After a 6.28 that
rules out the channel in use, the CHF moves the HAN (Mgmt_NWK_Update_req on the old
channel) and the sub-GHz devices follow. Every DBCH alert of the CHF goes to the ACB and
reaches the supplier as DCC alert N54 (DualBandCHAlert); the sub-GHz errors among them
(0x8F20/22/24/29/2B/2C/2D) carry response code E59 (seed 003 Annex A), the others I0.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lxml import etree

from gbhil.devices.core import Device
from gbhil.devices.trust import Role
from gbhil.duis.codes import ACKNOWLEDGED
from gbhil.duis.model import format_eui
from gbhil.han import ApsFrame, DutyCycleMode, TxPriority, TxStatus
from gbhil.han.channels import ChannelMask, PageChannel, is_sub_ghz
from gbhil.han.medium import ZDO_MGMT_NWK_UPDATE_REQ
from gbhil.pytest_plugin import needs, srv, usecase
from gbhil.pytest_plugin.plugin import Alert, DccClient, DccRefused, HanView, VirtualClock

PAGE_SUB_GHZ = 28
#: DCC alert code of every dual-band CHF alert (DUIS 3.9.14).
DUAL_BAND_CH_ALERT = "N54"
SUB_GHZ_ERROR = "E59"
SUCCESS = "I0"
DBCH09_ALERT_CODE = "8F2A"  # Sub GHz configuration changed
CHANNEL_CHANGED = "8F26"
LIMITED_DUTY_CYCLE = "8F20"
CRITICAL_DUTY_CYCLE = "8F22"
BELOW_LIMITED_CRITICAL = "8F23"
BELOW_NORMAL_LIMITED = "8F21"
MESSAGE_DISCARDED = "8F2C"
#: Filler traffic: a cluster/endpoint no device serves, so only the airtime counts.
FILLER_CLUSTER = 0xFC00
FILLER_ENDPOINT = 0xF0
FILLER = bytes(1000)
#: Rolling duty-cycle window of the medium plus one bucket: usage is back to zero after it.
DUTY_WINDOW_DRAINED_S = 3600 + 300
SETTINGS = """
<sr:NormalLimitedDutyCycleThreshold>1.3</sr:NormalLimitedDutyCycleThreshold>
<sr:LimitedCriticalDutyCycleThreshold>2.2</sr:LimitedCriticalDutyCycleThreshold>
<sr:MaximumSubGHzChannelChangesPerWeek>5</sr:MaximumSubGHzChannelChangesPerWeek>
<sr:GSMECurfew>7</sr:GSMECurfew>
<sr:ChannelQuieterThreshold>7</sr:ChannelQuieterThreshold>
<sr:ChannelNoisierThreshold>12</sr:ChannelNoisierThreshold>
<sr:NonGSMEPoorCommsPercentageThreshold>60.00</sr:NonGSMEPoorCommsPercentageThreshold>
<sr:NonGSMEPoorCommsMeasurementPeriods>130</sr:NonGSMEPoorCommsMeasurementPeriods>
<sr:LocalCHNoiseMeasurementPeriod>100</sr:LocalCHNoiseMeasurementPeriod>
<sr:LocalCHFailurePercentage>40.00</sr:LocalCHFailurePercentage>
<sr:LocalCHRetryPercentage>30.00</sr:LocalCHRetryPercentage>
"""
CHANNEL_LOG = (
    "<sr:ReadCHFSubGHzChannelLog><sr:ReadLogPeriod>"
    "<sr:StartDateTime>2025-12-01T00:00:00Z</sr:StartDateTime>"
    "<sr:EndDateTime>2025-12-31T00:00:00Z</sr:EndDateTime>"
    "</sr:ReadLogPeriod></sr:ReadCHFSubGHzChannelLog>"
)
VALID_MASKS = {
    "LowerBandSubGHzChannels0To26": (1, 2),
    "LowerBandSubGHzChannels27To34": (28, 29),
    "LowerBandSubGHzChannels35To61": (36, 37),
    "UpperBandSubGHzChannels0To26": (1, 2),
}


def _set_config(masks: dict[str, tuple[int, ...]]) -> str:
    pages = "".join(
        f"<sr:{name}>{''.join(f'<sr:Channel{c}/>' for c in channels)}</sr:{name}>"
        for name, channels in masks.items()
    )
    return f"<sr:SetCHFSubGHzConfiguration>{pages}{SETTINGS}</sr:SetCHFSubGHzConfiguration>"


def _payload(dcc: DccClient, submission_srv: str, chf: Device, body: str | None = None) -> dict:
    request = dcc.request(submission_srv, chf, body=body)
    summary = dcc.describe(dcc.submit(request).await_response())
    assert summary["header"]["businessOriginatorId"] == format_eui(chf.eui)
    assert summary["header"]["supplementaryRemotePartyId"] == dcc.user_eui(Role.SUPPLIER)
    assert summary["outcome"]["success"] is True
    return summary


@usecase("DBCH01")
@srv("6.31")
def test_read_chf_sub_ghz_channel(dcc: DccClient, chf: Device) -> None:
    summary = _payload(dcc, "6.31", chf)
    assert summary["header"]["useCase"] == "DBCH01"
    [channel] = summary["payload"]["data"]
    assert "bit-string" in channel


@usecase("DBCH02")
@srv("6.32")
def test_read_chf_sub_ghz_channel_log(dcc: DccClient, chf: Device) -> None:
    summary = _payload(dcc, "6.32", chf, body=CHANNEL_LOG)
    assert summary["header"]["useCase"] == "DBCH02"


@usecase("DBCH03")
@srv("6.30")
def test_read_chf_sub_ghz_configuration(dcc: DccClient, chf: Device) -> None:
    summary = _payload(dcc, "6.30", chf)
    assert summary["header"]["useCase"] == "DBCH03"
    [config] = summary["payload"]["data"]
    masks = config["structure"][:4]
    assert all("bit-string" in m for m in masks), "four channel page masks"


@usecase("DBCH05")
@srv("6.29")
def test_request_chf_sub_ghz_channel_scan(dcc: DccClient, chf: Device) -> None:
    summary = _payload(dcc, "6.29", chf)
    assert summary["header"]["useCase"] == "DBCH05"


def _dual_band(dcc: DccClient, alert_code: str, within: float = 60) -> list[Alert]:
    """N54 alerts of this test carrying ``alert_code``, after ``within`` seconds."""
    return [
        a
        for a in dcc.watch_alerts(within, code=DUAL_BAND_CH_ALERT, user=Role.SUPPLIER)
        if a.response.body.body.findtext("{*}DeviceAlertCode") == alert_code  # type: ignore[union-attr]
    ]


def _sub_ghz(han: HanView, eui: bytes) -> PageChannel:
    return next(pc for pc in han.medium.node(eui).channels if is_sub_ghz(pc.page))


@usecase("DBCH04", "DBCH09")
@srv("6.28")
def test_set_configuration_with_valid_masks_succeeds_and_raises_dbch09(
    dcc: DccClient, chf: Device
) -> None:
    submission = dcc.submit(dcc.request("6.28", chf, body=_set_config(VALID_MASKS)))

    assert submission.await_ack().header.response_code == ACKNOWLEDGED
    summary = dcc.describe(submission.await_response())
    assert summary["header"]["useCase"] == "DBCH04"
    assert summary["outcome"]["success"] is True
    [alert] = _dual_band(dcc, DBCH09_ALERT_CODE)
    assert alert.response.header.response_code == SUCCESS, "not a sub-GHz error"
    hub_alert = alert.response.body.body  # type: ignore[union-attr]
    assert etree.QName(hub_alert).localname == "DualBandCHAlert"
    assert hub_alert.findtext("{*}CHFDeviceID") == format_eui(chf.eui)
    assert hub_alert.findtext("{*}GBCSHexadecimalMessageCode") == "0113"  # DBCH09


@usecase("DBCH04", "DBCH07", "DBCH01")
@srv("6.28", "6.31", "11.2")
@needs("subghz", "capture")
def test_new_masks_move_the_han_and_the_gsme_follows(
    dcc: DccClient, chf: Device, gsme: Device, han: HanView
) -> None:
    old = _sub_ghz(han, chf.eui)
    assert _sub_ghz(han, gsme.eui) == old
    masks = dict(VALID_MASKS)
    pair = (3, 4) if old.page == PAGE_SUB_GHZ and old.channel in (1, 2) else (1, 2)
    masks["LowerBandSubGHzChannels0To26"] = pair
    new = PageChannel(PAGE_SUB_GHZ, pair[0])  # the first channel the masks allow

    configured = dcc.submit(dcc.request("6.28", chf, body=_set_config(masks)))
    assert dcc.describe(configured.await_response())["outcome"]["success"] is True
    gas = dcc.describe(dcc.submit(dcc.request("11.2", gsme)).await_response())

    assert gas["outcome"]["success"] is True, "the GSME is reached on the new channel"
    assert _sub_ghz(han, chf.eui) == new and _sub_ghz(han, gsme.eui) == new
    [update] = [f for f in han.frames if f.frame.cluster_id == ZDO_MGMT_NWK_UPDATE_REQ]
    assert (update.page, update.channel) == old, "announced on the old channel"
    later = [f for f in han.frames_on(PAGE_SUB_GHZ) if f.timestamp > update.timestamp]
    assert later and {(f.page, f.channel) for f in later} == {new}, "nothing on the old one"
    assert any(f.frame.src_eui64 == gsme.eui for f in later), "the GSME talks there"
    [changed] = _dual_band(dcc, CHANNEL_CHANGED)
    assert changed.response.header.response_code == SUCCESS
    [channel] = dcc.describe(
        dcc.submit(dcc.request("6.31", chf)).await_response())["payload"]["data"]
    expected = ChannelMask.of(new.page, [new.channel]).encode()
    assert channel["bit-string"] == f"{expected:032b}", "DBCH01 reads the channel in use"


@pytest.fixture()
def _duty_cycle_drained(clock: VirtualClock, chf: Device, han: HanView) -> Iterator[None]:
    """Leave the CHF's sub-GHz duty cycle as found: let the rolling window empty."""
    yield
    clock.sleep(DUTY_WINDOW_DRAINED_S)
    assert han.medium.duty_cycle_status(chf.eui).mode is DutyCycleMode.NORMAL


@usecase("DBCH06", "DBCH10")
@needs("subghz", "virtual_time")
@pytest.mark.usefixtures("_duty_cycle_drained")
def test_duty_cycle_over_thresholds_reaches_the_supplier_as_n54_e59(
    dcc: DccClient, chf: Device, gsme: Device, han: HanView, clock: VirtualClock
) -> None:
    """Heavy sub-GHz traffic of the CHF: 0x8F20 (limited, with the device to suspend) and
    0x8F22 (critical) arrive as N54 with E59; a routine frame is then discarded (0x8F2C,
    E59); once the hour has passed the falling-back alerts come with I0."""
    medium = han.medium
    pc = _sub_ghz(han, chf.eui)
    filler = ApsFrame(chf.eui, gsme.eui, FILLER_CLUSTER, FILLER, dst_endpoint=FILLER_ENDPOINT,
                      page=pc.page, channel=pc.channel, priority=TxPriority.CRITICAL)

    async def fill() -> None:
        while medium.duty_cycle_status(chf.eui).mode < DutyCycleMode.CRITICAL:
            assert medium.transmit(filler).status is TxStatus.SENT
        routine = ApsFrame(chf.eui, gsme.eui, FILLER_CLUSTER, b"routine",
                           dst_endpoint=FILLER_ENDPOINT, page=pc.page, channel=pc.channel)
        assert medium.transmit(routine).status is TxStatus.DISCARDED_DUTY_CYCLE

    clock.run(fill())

    [limited] = _dual_band(dcc, LIMITED_DUTY_CYCLE)
    [critical] = _dual_band(dcc, CRITICAL_DUTY_CYCLE, within=0)
    discarded = _dual_band(dcc, MESSAGE_DISCARDED, within=0)
    for alert in (limited, critical, *discarded):
        assert alert.response.header.response_code == SUB_GHZ_ERROR
    assert discarded, "the routine frame's discard is reported"
    body = limited.response.body.body  # type: ignore[union-attr]
    assert body.findtext("{*}CHFDeviceID") == format_eui(chf.eui)
    assert body.findtext("{*}LimitedDutyCycleActionTaken/{*}DeviceIDToSuspend") == format_eui(
        chf.eui)
    assert body.findtext("{*}GBCSHexadecimalMessageCode") == "0110"  # DBCH06
    # not a GBCS message: nothing to name in MessageDiscarded
    assert discarded[0].response.body.body.find(  # type: ignore[union-attr]
        "{*}MessageDiscardedDueToDutyCycleManagement") is None

    falling = _dual_band(dcc, BELOW_LIMITED_CRITICAL, within=DUTY_WINDOW_DRAINED_S)
    falling += _dual_band(dcc, BELOW_NORMAL_LIMITED, within=0)
    assert [a.response.header.response_code for a in falling] == [SUCCESS, SUCCESS]


@usecase("DBCH04")
@srv("6.28")
def test_lower_band_page_with_one_channel_is_refused_with_e062802(
    dcc: DccClient, chf: Device
) -> None:
    """Negative (seed 003): a used Lower Band page needs at least two channels."""
    for page in ("LowerBandSubGHzChannels0To26", "LowerBandSubGHzChannels27To34",
                 "LowerBandSubGHzChannels35To61"):
        masks = dict(VALID_MASKS)
        masks[page] = masks[page][:1]
        submission = dcc.submit(dcc.request("6.28", chf, body=_set_config(masks)))

        assert submission.await_ack().header.response_code == "E062802", page
        assert submission.command is None, "nothing goes to the CHF"
        with pytest.raises(DccRefused):
            submission.await_response()
    assert not dcc.watch_alerts(60, code=DUAL_BAND_CH_ALERT)


@usecase("DBCH04")
@srv("6.28")
def test_upper_band_page_with_one_channel_is_accepted(dcc: DccClient, chf: Device) -> None:
    """The two-channel rule is for the Lower Band pages only."""
    masks = dict(VALID_MASKS)
    masks["UpperBandSubGHzChannels0To26"] = (5,)
    submission = dcc.submit(dcc.request("6.28", chf, body=_set_config(masks)))

    assert submission.await_ack().header.response_code == ACKNOWLEDGED
    assert dcc.describe(submission.await_response())["outcome"]["success"] is True


@usecase("DBCH04")
@srv("6.28")
def test_channel_outside_its_page_is_refused_before_e062801(dcc: DccClient, chf: Device) -> None:
    """Negative: a channel off its page (E062801 in seed 003) is already invalid DUIS XML,
    so the emulator's XSD check answers HTTP 400 and no DUIS code."""
    masks = dict(VALID_MASKS)
    masks["LowerBandSubGHzChannels27To34"] = (28, 3)
    submission = dcc.submit(dcc.request("6.28", chf, body=_set_config(masks)))

    assert submission.http_status == 400
    assert submission.ack is None and submission.command is None


@usecase("DBCH04", "GCS38")
@srv("6.28", "11.2")
@needs("subghz", "capture")
def test_gsme_still_reached_on_the_sub_ghz_page_after_reconfiguration(
    dcc: DccClient, chf: Device, gsme: Device, han: HanView
) -> None:
    configured = dcc.submit(dcc.request("6.28", chf, body=_set_config(VALID_MASKS)))
    assert dcc.describe(configured.await_response())["outcome"]["success"] is True

    response = dcc.submit(dcc.request("11.2", gsme)).await_response()

    assert dcc.describe(response)["outcome"]["success"] is True
    frames = han.frames_on(PAGE_SUB_GHZ)
    assert frames, "the GSME talks on the sub-GHz page"
    assert len({f.channel for f in frames}) == 1, "one sub-GHz channel in use"
