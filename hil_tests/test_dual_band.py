"""Dual band suite: SR 6.28-6.32 (DBCH01-05) on the CHF's sub-GHz configuration.

6.28 masks must use at least two channels on each Lower Band page they use (seed 003,
E062802). Requests go to the CHF through the ACB on the User's behalf; the CHF's DBCH09
configuration-changed alert goes to the ACB and reaches the supplier as DCC alert N62.
"""

from __future__ import annotations

import pytest
from lxml import etree

from gbhil.devices.core import Device
from gbhil.devices.trust import Role
from gbhil.duis.codes import ACKNOWLEDGED
from gbhil.duis.model import format_eui
from gbhil.pytest_plugin import needs, srv, usecase
from gbhil.pytest_plugin.plugin import DccClient, DccRefused, HanView

PAGE_SUB_GHZ = 28
#: DCC alert code of a comms hub alert addressed to the ACB (gbhil's routing of DBCH09).
COMMS_HUB_ALERT = "N62"
DBCH09_ALERT_CODE = "8F2A"  # Sub GHz configuration changed
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
    [alert] = dcc.await_alerts(code=COMMS_HUB_ALERT, user=Role.SUPPLIER)
    hub_alert = alert.response.body.body  # type: ignore[union-attr]
    assert etree.QName(hub_alert).localname == "CommsHubAlert"
    assert hub_alert.findtext("{*}CommsHubDeviceID") == format_eui(chf.eui)
    assert hub_alert.findtext("{*}AlertCode") == DBCH09_ALERT_CODE


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
    assert not dcc.watch_alerts(60, code=COMMS_HUB_ALERT)


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
@needs("subghz")
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
