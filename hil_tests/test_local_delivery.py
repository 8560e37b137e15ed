"""Local command delivery suite: command variants 2, 3 and 6 and SR 8.13.

The DCC returns the GBCS command for local delivery (``LocalCommand``), the HHT takes it
over the HAN to the device, and what the device answered goes back to the DCC with SR
8.13 Return Local Command Response (``OriginalRequestID`` = the local request's
RequestID), which the DCC checks against the command it issued and processes like a WAN
response. The 8.13 error codes are gbhil's stand-ins E081301-03 (docs/dcc.md).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gbhil.devices import firmware
from gbhil.devices.core import Device
from gbhil.duis.codes import ACKNOWLEDGED
from gbhil.duis.model import DCC_EUI, format_eui
from gbhil.gbcs.frame import Cra
from gbhil.gbcs.message import decode_message
from gbhil.pytest_plugin import needs, srv, usecase
from gbhil.pytest_plugin.plugin import DccClient, Hht, Submission, VirtualClock
from gbhil.smki.pki import key_identifier

SUCCESS = "I0"
#: Local delivery asked by a role that may not (DUIS).
LOCAL_DELIVERY_NOT_ALLOWED = "E17"
#: The User Role may not send this Service Reference Variant.
ROLE_NOT_ELIGIBLE = "E2"
#: The Command Variant is not one the SRV allows (DUIS; the XSD comments list them).
WRONG_COMMAND_VARIANT = "E12"
#: SR 8.13 (gbhil stand-ins): unknown original request / not GBCS / answers another command.
UNKNOWN_ORIGINAL = "E081301"
NOT_A_GBCS_RESPONSE = "E081302"
RESPONSE_MISMATCH = "E081303"
#: CS06 response code: success.
ACTIVATED = 0
#: A firmware version for the critical local activation (unique in the session's CPL/SMI).
VERSION_LOCAL = "01000201"


def _local(dcc: DccClient, srv_: str, device: Device, cv: int) -> Submission:
    submission = dcc.submit(dcc.request(srv_, device, cv=cv))
    ack = submission.await_ack()
    assert ack.header.response_code == SUCCESS, "I0 with the LocalCommand"
    assert submission.local_command is not None
    return submission


def _return_local(dcc: DccClient, original: Submission | str | None, gbcs: bytes) -> str:
    """SR 8.13 (CV 8, to the DCC); the synchronous response code."""
    body = "<sr:ReturnLocalCommandResponse>"
    if original is not None:
        rid = original.request_id if isinstance(original, Submission) else original
        body += f"<sr:OriginalRequestID>{rid}</sr:OriginalRequestID>"
    body += (f"<sr:DeviceGBCSResponse>{base64.b64encode(gbcs).decode()}"
             "</sr:DeviceGBCSResponse></sr:ReturnLocalCommandResponse>")
    submission = dcc.submit(dcc.request("8.13", DCC_EUI, body=body, cv=8))
    return str(submission.await_ack().header.response_code)


def _deliver(hht: Hht, submission: Submission, device: Device) -> bytes:
    assert submission.local_command is not None
    result = hht.deliver(submission.local_command)
    assert not result.timed_out and result.response is not None
    gs = decode_message(result.response).frame.gs
    assert gs.cra is Cra.RESPONSE and gs.business_originator == device.eui
    return result.response


@usecase("ECS52")
@srv("11.2", "8.13")
def test_cv2_firmware_read_is_returned_with_8_13(dcc: DccClient, hht: Hht, esme: Device) -> None:
    submission = _local(dcc, "11.2", esme, cv=2)
    assert submission.command is None, "CV 2: nothing over the WAN"

    response = _deliver(hht, submission, esme)

    assert dcc.describe(response)["outcome"]["success"] is True
    assert _return_local(dcc, submission, response) == ACKNOWLEDGED
    assert _return_local(dcc, submission, response) == UNKNOWN_ORIGINAL, "processed once"


@usecase("ECS17b")
@srv("4.1.1", "8.13")
def test_cv2_meter_read_is_returned_with_8_13(dcc: DccClient, hht: Hht, esme: Device) -> None:
    submission = _local(dcc, "4.1.1", esme, cv=2)
    assert submission.command is None

    response = _deliver(hht, submission, esme)

    summary = dcc.describe(response)
    assert summary["header"]["useCase"] == "ECS17b" and summary["outcome"]["success"] is True
    assert _return_local(dcc, submission, response) == ACKNOWLEDGED


@usecase("ECS52")
@srv("11.2", "8.13")
def test_cv2_chf_firmware_read_is_returned_with_8_13(
    dcc: DccClient, hht: Hht, chf: Device
) -> None:
    submission = _local(dcc, "11.2", chf, cv=2)

    response = _deliver(hht, submission, chf)

    assert _return_local(dcc, submission, response) == ACKNOWLEDGED


@usecase("ECS17b")
@srv("4.1.1")
def test_cv3_returns_the_local_command_and_sends_it_over_the_wan(
    dcc: DccClient, hht: Hht, esme: Device, clock: VirtualClock
) -> None:
    """CV 3: the same command both ways; the device answers the first copy only."""
    submission = _local(dcc, "4.1.1", esme, cv=3)

    clock.sleep(60)  # the WAN round trip
    [_local_command, device_response] = submission.responses
    assert submission.command == submission.local_command, "the very same command"
    wan = dcc.describe(device_response)
    assert device_response.header.response_code == SUCCESS
    assert wan["header"]["businessOriginatorId"] == format_eui(esme.eui)
    assert wan["outcome"]["success"] is True
    assert submission.local_command is not None
    replay = hht.deliver(submission.local_command, timeout=60)
    assert replay.timed_out and replay.response is None, "a replayed counter is ignored"


@pytest.fixture()
def _restore_esme_firmware(dcc: DccClient, esme: Device) -> Iterator[None]:
    fw = firmware.slots(esme)
    saved = (fw.running_version, fw.running_hash, fw.staged_version, fw.staged_hash)
    smi = dcc.inventory.get(format_eui(esme.eui)).firmware_version
    yield
    fw.running_version, fw.running_hash, fw.staged_version, fw.staged_hash = saved
    dcc.inventory.update_details(format_eui(esme.eui), firmware_version=smi)


@usecase("CS06")
@srv("11.3", "8.13")
@needs("local_devices")  # stages the image in the ESME object
@pytest.mark.usefixtures("_restore_esme_firmware")
def test_critical_activation_signed_then_delivered_locally_cv6(
    dcc: DccClient, hht: Hht, esme: Device
) -> None:
    """CV 4 pre-command, signed by the supplier, back as CV 6: a LocalCommand, no WAN."""
    image_hash = firmware.slots(esme).stage(b"local image", bytes.fromhex(VERSION_LOCAL))
    body = (f"<sr:ActivateFirmware><sr:FirmwareHash>{image_hash.hex().upper()}"
            "</sr:FirmwareHash></sr:ActivateFirmware>")
    pre = dcc.submit(dcc.request("11.3", esme, body=body, cv=4))
    assert pre.pre_command is not None

    signed = dcc.submit_signed(pre, cv=6)

    assert signed.await_ack().header.response_code == SUCCESS
    assert signed.local_command is not None and signed.command is None
    response = _deliver(hht, signed, esme)
    outcome = dcc.describe(response)["payload"]["executionOutcome"]
    assert outcome["responseCode"] == ACTIVATED
    assert str(outcome["firmwareVersion"]).upper() == VERSION_LOCAL
    assert _return_local(dcc, signed, response) == ACKNOWLEDGED


@usecase("ECS52")
@srv("11.2")
def test_local_delivery_for_other_user_is_refused_with_e17(
    dcc: DccClient, esme: Device
) -> None:
    """Negative: only IS/ES/GS/ED/GT may ask for local delivery."""
    submission = dcc.submit(dcc.request("11.2", esme, cv=2, user="other_user"))

    assert submission.await_ack().header.response_code == LOCAL_DELIVERY_NOT_ALLOWED
    assert submission.local_command is None


@usecase("ECS52")
@srv("8.13")
def test_8_13_errors_for_unknown_undecodable_and_mismatched_responses(
    dcc: DccClient, hht: Hht, esme: Device
) -> None:
    """Negative: E081301 (no / unknown OriginalRequestID), E081302 (not GBCS),
    E081303 (the response answers another local command)."""
    first = _local(dcc, "11.2", esme, cv=2)
    other = _local(dcc, "11.2", esme, cv=2)
    response = _deliver(hht, first, esme)
    unknown = f"{dcc.user_eui('supplier')}:{format_eui(esme.eui)}:1"

    assert _return_local(dcc, None, response) == UNKNOWN_ORIGINAL
    assert _return_local(dcc, unknown, response) == UNKNOWN_ORIGINAL
    assert _return_local(dcc, first, b"not GBCS") == NOT_A_GBCS_RESPONSE
    assert _return_local(dcc, other, response) == RESPONSE_MISMATCH
    assert _return_local(dcc, first, response) == ACKNOWLEDGED


# --- seed 002: 6.15.1 and 6.21 responses returned with 8.13 (Organisation Certificates) -------

#: GBCS Remote Party Role of the supplier's trust anchor cells.
SUPPLIER_ROLE = 2
#: CS02b replacement status "success".
REPLACED = 0


def _krp_body(element: str, rig: Any, user_eui: str, *, wrapped: bool) -> str:
    """The supplier's own certificates as the replacement (the device keeps working)."""
    eui = bytes.fromhex(user_eui.replace("-", ""))
    certs = ""
    for name, usage, top_up in (("DigitalSigningCertificate", "ds", False),
                                ("KeyAgreementCertificate", "ka", False),
                                ("KeyAgreementTopUpCertificate", "ka", True)):
        cert = rig.keystore.certificate(eui, usage, prepayment=top_up)
        if cert is not None:
            der = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
            certs += f"<sr:{name}>{der}</sr:{name}>"
    if wrapped:
        wrapper = "SupplierOrNetworkOperatorCertificates"
        certs = f"<sr:{wrapper}>{certs}</sr:{wrapper}>"
    path = base64.b64encode(
        rig.keystore.certificate(eui, "ds").public_bytes(Encoding.DER)).decode()
    return (f"<sr:{element}><sr:RemotePartyRole>Supplier</sr:RemotePartyRole>"
            "<sr:RemotePartyFloorSeqNumber>0</sr:RemotePartyFloorSeqNumber>"
            f"<sr:ReplacementCertificates>{certs}</sr:ReplacementCertificates>"
            f"<sr:CertificationPathCertificates><sr:Certificate>{path}</sr:Certificate>"
            "</sr:CertificationPathCertificates>"
            "<sr:ApplyTimeBasedCPVChecks>false</sr:ApplyTimeBasedCPVChecks>"
            f"</sr:{element}>")


def _key_id(rig: Any, user_eui: str, usage: str, top_up: bool = False) -> str:
    eui = bytes.fromhex(user_eui.replace("-", ""))
    return key_identifier(rig.keystore.certificate(eui, usage, prepayment=top_up)
                          .public_key()).hex().upper()


@usecase("CS02b")
@srv("6.15.1", "6.21", "8.13")
@pytest.mark.parametrize(("srv_", "element", "wrapped"), [
    ("6.15.1", "UpdateSecurityCredentialsKRP", True),
    ("6.21", "RequestHandoverOfDCCControlledDevice", False),
], ids=["6.15.1", "6.21"])
def test_credentials_response_returned_with_8_13_updates_certificate_tracking(
    dcc: DccClient, hht: Hht, esme: Device, rig: Any, srv_: str, element: str, wrapped: bool
) -> None:
    """Seed 002: the DCC tracks the Organisation Certificates on a device from the 6.15.1 /
    6.21 responses that come back through 8.13 after local delivery."""
    supplier = dcc.user_eui("supplier")
    device = format_eui(esme.eui)
    before = {(h.role, h.usage): h for h in dcc.processor.org_certificates.held(device)
              if h.service == srv_}
    assert not before, "nothing tracked for this service yet"
    body = _krp_body(element, rig, supplier, wrapped=wrapped)
    if srv_ == "6.15.1":  # critical: CV 4 pre-command, signed by the User, back as CV 6
        pre = dcc.submit(dcc.request(srv_, esme, body=body, cv=4))
        assert pre.pre_command is not None
        signed = dcc.submit_signed(pre, cv=6)
    else:  # 6.21 is CV 1-3: CV 2 returns the command for local delivery
        signed = dcc.submit(dcc.request(srv_, esme, body=body, cv=2))
    assert signed.await_ack().header.response_code == SUCCESS
    assert signed.local_command is not None and signed.command is None
    response = _deliver(hht, signed, esme)
    outcomes = dcc.describe(response)["payload"]["executionOutcome"]["replacementOutcomes"]
    assert {o["statusCode"] for o in outcomes} == {REPLACED}
    assert not [h for h in dcc.processor.org_certificates.held(device) if h.service == srv_], \
        "not tracked before the User returns the response"

    assert _return_local(dcc, signed, response) == ACKNOWLEDGED

    held = {(h.role, h.usage): h for h in dcc.processor.org_certificates.held(device)
            if h.service == srv_}
    assert held[(SUPPLIER_ROLE, "DS")].key_id == _key_id(rig, supplier, "ds")
    assert held[(SUPPLIER_ROLE, "KA")].key_id == _key_id(rig, supplier, "ka")
    assert all(h.local and h.subject_id == supplier for h in held.values())
    assert len(held) == len(outcomes)
    assert _return_local(dcc, signed, response) == UNKNOWN_ORIGINAL, "processed once"


@usecase("CS02b")
@srv("6.15.1", "6.21")
def test_credentials_local_delivery_refusals(dcc: DccClient, esme: Device, rig: Any) -> None:
    """Negative: 6.15.1 is critical, so CV 2 is the wrong variant (E12, the XSD's CV list);
    6.21 is for IS/GS only (E2 for another role). Both roles it allows may ask for local
    delivery, so E17 cannot arise for 6.21 (it is covered with 11.2 above)."""
    krp = _krp_body("UpdateSecurityCredentialsKRP", rig, dcc.user_eui("supplier"), wrapped=True)
    handover = _krp_body("RequestHandoverOfDCCControlledDevice", rig, dcc.user_eui("supplier"),
                         wrapped=False)

    wrong_variant = dcc.submit(dcc.request("6.15.1", esme, body=krp, cv=2))
    other = dcc.submit(dcc.request("6.21", esme, body=handover, cv=2, user="other_user"))

    assert wrong_variant.await_ack().header.response_code == WRONG_COMMAND_VARIANT
    assert other.await_ack().header.response_code == ROLE_NOT_ELIGIBLE
    assert wrong_variant.local_command is None and other.local_command is None
