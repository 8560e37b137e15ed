"""The DCC's request processing on the simulated rig, without HTTP: every DUIS check and
response code the processor gives, alert throttling, AD1 timing, traffic management,
sequencing, DSP future dating and restart recovery.

The harness here is shared with test_dcc_endpoint.py and test_dcc_e2e.py. Every message
the DCC sends is checked to be XSD-valid and signed by the DCC before a test looks at it.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from gbhil.cli_dcc import prepare_request, sign_pre_command, signed_pre_command_request
from gbhil.dcc.cpl import CplEntry, DeviceModel, simulated_certificates
from gbhil.dcc.delivery import MessageKind
from gbhil.dcc.emulator import DccEmulator, EmulatorConfig, default_emulator
from gbhil.dcc.firmware_reports import ReportedVersion, reported_version, version_text
from gbhil.dcc.inventory import DeviceStatus, DeviceType, NewDevice, Trigger
from gbhil.dcc.inventory_requests import FirmwareReport
from gbhil.dcc.processing import (
    AlertThrottle,
    AlertThrottlePolicy,
    OverCapacity,
    ProcessingPolicy,
    SyncAnswer,
    TrafficManager,
    allowed_command_variants,
)
from gbhil.dcc.users import DccUser, UserDirectory, UserStatus
from gbhil.duis.model import (
    DCCAlertMessage,
    DeviceAlertMessage,
    PowerOutageEvent,
    Response,
    ResponseMessage,
    WebService,
    parse_response,
    wire_datetime,
)
from gbhil.duis.schema import SR_NS
from gbhil.duis.xmldsig import certificate_resolver, sign, verify
from gbhil.gbcs.message import decode_message
from gbhil.rigs.simulated import SimulatedRig
from gbhil.simulator import SteppedClock
from tests.conftest import CONFORMANCE

SCHEMA_DIR = CONFORMANCE / "duis" / "schema"
TEMPLATES = CONFORMANCE / "duis" / "templates"
SAMPLES = CONFORMANCE / "duis" / "samples"
requires_conformance = pytest.mark.skipif(
    not (SCHEMA_DIR.is_dir() and TEMPLATES.is_dir()),
    reason=f"DUIS schema and templates not found under {CONFORMANCE} (../shared)",
)
pytestmark = requires_conformance

ESME = "00-DB-12-34-56-78-90-A0"
GSME = "00-DB-12-34-56-78-90-A1"
CHF = "00-DB-12-34-56-78-90-A2"
SUPPLIER = "90-B3-D5-1F-30-01-00-00"
NETWORK = "90-B3-D5-1F-30-02-00-00"


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


# --- the harness --------------------------------------------------------------------------------


def edit(xml: bytes, *, cv: int | None = None, sr: str | None = None, srv: str | None = None,
         target: str | None = None, body: str | None = None,
         header: Callable[[etree._Element], None] | None = None) -> bytes:
    """Change header fields (and optionally the body, as XML text) of an unsigned request."""
    root = etree.fromstring(xml, etree.XMLParser(remove_blank_text=True))
    head = root.find(_sr("Header"))
    assert head is not None
    if cv is not None:
        head.find(_sr("CommandVariant")).text = str(cv)  # type: ignore[union-attr]
    if sr is not None:
        head.find(_sr("ServiceReference")).text = sr  # type: ignore[union-attr]
    if srv is not None:
        head.find(_sr("ServiceReferenceVariant")).text = srv  # type: ignore[union-attr]
    if target is not None:
        rid = head.find(_sr("RequestID"))
        assert rid is not None and rid.text is not None
        originator, _, counter = rid.text.split(":")
        rid.text = f"{originator}:{target}:{counter}"
    if body is not None:
        holder = root.find(_sr("Body"))
        assert holder is not None
        for child in list(holder):
            holder.remove(child)
        holder.append(etree.fromstring(f'<sr:X xmlns:sr="{SR_NS}">{body}</sr:X>')[0])
    if header is not None:
        header(head)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class Harness:
    """A started simulated rig with its DCC emulator; collects what the DCC sends."""

    def __init__(self, *, config: EmulatorConfig | None = None, db_path: str = ":memory:",
                 capture_sink: bool = True) -> None:
        self.rig = SimulatedRig.build(seed=4)
        self.rig.run(self.rig.start())
        self.emu: DccEmulator = default_emulator(
            self.rig, config=config or EmulatorConfig(duis_port=None, smki_port=None),
            db_path=db_path)
        self.sent: list[tuple[str, bytes, MessageKind]] = []
        if capture_sink:
            self.emu.processor.sink = lambda user, body, kind, rid: self.sent.append(
                (user, body, kind))
        self.rig.run(self.emu.start())
        self._counters = itertools.count(1_000_000)
        self.resolver = certificate_resolver([self.emu.users.dcc.certificate])

    @property
    def users(self) -> UserDirectory:
        return self.emu.users

    def template(self, name: str, *, user: str | None = None) -> bytes:
        """A template with a fresh counter (and originator ``user``), unsigned."""
        originator = None if user is None else self.users[user].user_id
        return prepare_request((TEMPLATES / name).read_bytes(), user=originator,
                               counter=next(self._counters))

    def sign(self, xml: bytes, user: str = "supplier") -> bytes:
        return self.users[user].sign(xml)

    def submit(self, service: WebService, signed: bytes) -> SyncAnswer:
        return self.rig.run(self.emu.processor.submit(service, signed))

    def send(self, name: str, service: WebService = WebService.SEND_COMMAND,
             user: str = "supplier", **changes: Any) -> SyncAnswer:
        xml = self.template(name, user=None if user == "supplier" else user)
        if changes:
            xml = edit(xml, **changes)
        return self.submit(service, self.sign(xml, user))

    def checked(self, body: bytes) -> Response:
        """Parse (XSD-validates) and verify the DCC's signature; the model."""
        verify(body, self.resolver, at=self.rig.clock.now())
        return parse_response(body)

    def code(self, answer: SyncAnswer) -> str:
        assert answer.status == 200, answer.body
        return self.checked(answer.body).header.response_code

    def settle(self, seconds: float = 60.0) -> None:
        async def wait() -> None:
            await self.rig.clock.sleep(seconds)

        self.rig.run(wait())

    def messages(self, user: str | None = None,
                 kind: MessageKind | None = None) -> list[Response]:
        uid = None if user is None else self.users[user].user_id
        return [self.checked(body) for who, body, k in self.sent
                if (uid is None or who == uid) and (kind is None or k is kind)]

    def close(self) -> None:
        self.rig.run(self.emu.stop())
        self.rig.close()


@pytest.fixture()
def dcc() -> Any:
    harness = Harness()
    yield harness
    harness.close()


# --- XSD facts ------------------------------------------------------------------------------------


def test_command_variants_come_from_the_xsd_comments(dcc: Harness) -> None:
    table = allowed_command_variants(dcc.emu.processor.schema)
    assert len(table) == 129
    assert table["4.1.1"] == {1, 2, 3}
    assert table["7.1"] == {4, 5, 6, 7}
    assert table["8.2"] == {8}
    assert table["8.1.1"] == {4, 5}


# --- authentication -------------------------------------------------------------------------------


def test_device_request_is_acknowledged_and_answered(dcc: Harness) -> None:
    answer = dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")
    ack = dcc.checked(answer.body)
    assert ack.header.response_code == "I99" and ack.is_acknowledgement
    dcc.settle(10)
    [response] = dcc.messages("supplier", MessageKind.RESPONSE)
    assert response.header.response_code == "I0"
    assert response.header.request_id == ack.header.request_id
    assert isinstance(response.body, ResponseMessage) and response.body.gbcs_payload


def test_unsigned_request_is_e100(dcc: Harness) -> None:
    xml = dcc.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, xml)) == "E100"


def test_placeholder_signature_is_e100(dcc: Harness) -> None:
    raw = (TEMPLATES / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML").read_bytes()
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, raw)) == "E100"


def test_tampered_request_is_e100(dcc: Harness) -> None:
    signed = dcc.sign(dcc.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"))
    tampered = signed.replace(b"<sr:ReadFirmwareVersion/>", b"<sr:ReadFirmwareVersion></sr:Read"
                              b"FirmwareVersion>").replace(b":00-DB-12-34-56-78-90-A0:",
                                                           b":00-DB-12-34-56-78-90-A1:")
    assert tampered != signed
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, tampered)) == "E100"


def test_signing_with_a_gbcs_key_is_e65(dcc: Harness) -> None:
    supplier = dcc.users["supplier"]
    keystore = dcc.rig.keystore
    key, cert = keystore.ds_private(supplier.eui), keystore.certificate(supplier.eui, "ds")
    assert key is not None and cert is not None
    signed = sign(dcc.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"), key, cert)
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, signed)) == "E65"


def test_signing_for_another_user_is_e100(dcc: Harness) -> None:
    xml = dcc.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")  # originator: supplier
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(xml, "network_operator"))) \
        == "E100"


def test_user_unknown_to_the_dcc_is_e1(dcc: Harness) -> None:
    other = dcc.users["supplier2"]
    known = [u for u in dcc.users if u.user_id != other.user_id]
    assert other.xml_certificate is not None
    dcc.emu.processor.users = UserDirectory(known, dcc.users.dcc,
                                            certificates=[other.xml_certificate])
    xml = dcc.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", user="supplier2")
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, other.sign(xml))) == "E1"


def test_suspended_user_is_e3(dcc: Harness) -> None:
    dcc.users.update(SUPPLIER, status=UserStatus.SUSPENDED)
    assert dcc.code(dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")) == "E3"


def test_duplicate_request_id_is_e55_and_an_older_counter_e100(dcc: Harness) -> None:
    first = dcc.sign(dcc.template("8.2_READ_INVENTORY_REQUEST_DUIS.XML"))
    older = dcc.sign(dcc.template("8.2_READ_INVENTORY_REQUEST_DUIS.XML"))
    newer = dcc.sign(dcc.template("8.2_READ_INVENTORY_REQUEST_DUIS.XML"))
    assert dcc.code(dcc.submit(WebService.NON_DEVICE, first)) == "I0"
    assert dcc.code(dcc.submit(WebService.NON_DEVICE, newer)) == "I0"
    assert dcc.code(dcc.submit(WebService.NON_DEVICE, newer)) == "E55"
    assert dcc.code(dcc.submit(WebService.NON_DEVICE, older)) == "E100"


# --- validation and authorisation ----------------------------------------------------------------


def test_request_type_for_the_wrong_url_is_e13(dcc: Harness) -> None:
    assert dcc.code(dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", WebService.NON_DEVICE)) \
        == "E13"
    assert dcc.code(dcc.send("8.2_READ_INVENTORY_REQUEST_DUIS.XML", WebService.TRANSFORM)) \
        == "E13"


def test_command_variant_not_for_the_srv_is_e12(dcc: Harness) -> None:
    answer = dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", WebService.NON_DEVICE, cv=8)
    assert dcc.code(answer) == "E12"


def test_sr_and_srv_that_do_not_belong_together_are_e48(dcc: Harness) -> None:
    assert dcc.code(dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", sr="4.1")) == "E48"


def test_role_not_eligible_for_the_srv_is_e2(dcc: Harness) -> None:
    answer = dcc.send("ECS42_7.1_SUCCESS_REQUEST_DUIS.XML", WebService.TRANSFORM,
                      user="network_operator")
    assert dcc.code(answer) == "E2"


def test_role_not_registered_for_the_device_is_e4(dcc: Harness) -> None:
    answer = dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", user="supplier2")
    assert dcc.code(answer) == "E4"
    # ... while the registered network operator may read the same meter
    assert dcc.code(dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", user="network_operator")) \
        == "I99"


def test_unknown_device_is_e19(dcc: Harness) -> None:
    answer = dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", target="00-DB-12-34-56-78-90-FF")
    assert dcc.code(answer) == "E19"


def test_device_status_blocks_requests_e5_but_not_firmware_reads(dcc: Harness) -> None:
    dcc.emu.inventory.change_status(ESME, DeviceStatus.SUSPENDED, Trigger.SUSPENDED)
    assert dcc.code(dcc.send("ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS.XML")) == "E5"
    assert dcc.code(dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")) == "I99"


def test_local_delivery_for_a_role_that_may_not_is_e17(dcc: Harness) -> None:
    answer = dcc.send("CCS07_8.9_SUCCESS_REQUEST_DUIS.XML", WebService.NON_DEVICE,
                      user="other_user", cv=2)
    assert dcc.code(answer) == "E17"


def test_device_model_without_a_cpl_entry_is_e57(dcc: Harness) -> None:
    inventory = dcc.emu.inventory
    stranger = "00-DB-12-34-56-78-90-B0"
    inventory.add_device(NewDevice(stranger, DeviceType.ESME, "acme", "UNLISTED", "1",
                                   "01000000", map_id="ACME"),
                         status=DeviceStatus.COMMISSIONED)
    inventory.set_party(stranger, "IS", SUPPLIER)
    answer = dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", target=stranger)
    assert dcc.code(answer) == "E57"


def test_cv9_is_refused_with_e12(dcc: Harness) -> None:
    answer = dcc.send("8.2_READ_INVENTORY_REQUEST_DUIS.XML", WebService.NON_DEVICE, cv=9)
    assert dcc.code(answer) == "E12"


# --- non-device requests ------------------------------------------------------------------------


def test_read_inventory_returns_the_premises_with_map_ids(dcc: Harness) -> None:
    answer = dcc.send("8.2_READ_INVENTORY_REQUEST_DUIS.XML", WebService.NON_DEVICE)
    response = dcc.checked(answer.body)
    assert response.header.response_code == "I0"
    assert isinstance(response.body, ResponseMessage) and response.body.other is not None
    devices = response.body.other.findall(_sr("Device"))
    ids = {d.findtext(_sr("DeviceID")) for d in devices}
    assert {ESME, GSME, CHF} <= ids
    map_ids = {d.findtext(_sr("DeviceID")): d.findtext(_sr("MAPID")) for d in devices}
    assert map_ids[ESME] == "GBHL" and map_ids[CHF] is None


def test_prenotification_without_map_id_for_an_esme_is_refused(dcc: Harness) -> None:
    body = ("<sr:DevicePrenotification><sr:DeviceID>00-DB-12-34-56-78-90-C0</sr:DeviceID>"
            "<sr:DeviceManufacturer>gbhil</sr:DeviceManufacturer>"
            "<sr:DeviceModel>GBHIL-ESME</sr:DeviceModel><sr:DeviceType>ESME</sr:DeviceType>"
            "</sr:DevicePrenotification>")
    answer = dcc.send("12.2_DEVICE_PRE_NOTIFICATION_REQUEST_DUIS.XML", WebService.NON_DEVICE,
                      body=body)
    assert dcc.code(answer) == "E11"  # gbhil's stand-in for SECMP0011's "[TBC]"
    with_map_id = body.replace("<sr:DeviceType>ESME</sr:DeviceType>",
                               "<sr:DeviceType>ESME</sr:DeviceType><sr:MAPID>AB12</sr:MAPID>")
    answer = dcc.send("12.2_DEVICE_PRE_NOTIFICATION_REQUEST_DUIS.XML", WebService.NON_DEVICE,
                      body=with_map_id)
    assert dcc.code(answer) == "I99"
    assert dcc.emu.inventory.get("00-DB-12-34-56-78-90-C0").map_id == "AB12"


# --- critical requests: CV 4 then CV 5 ------------------------------------------------------------


def _pre_command(dcc: Harness, answer: SyncAnswer) -> bytes:
    response = dcc.checked(answer.body)
    assert response.header.response_code == "I0"
    assert isinstance(response.body, ResponseMessage) and response.body.pre_command is not None
    return response.body.pre_command.gbcs_payload


def test_critical_request_pre_command_then_signed_pre_command(dcc: Harness) -> None:
    xml = dcc.template("ECS42_7.1_SUCCESS_REQUEST_DUIS.XML")
    pre = _pre_command(dcc, dcc.submit(WebService.TRANSFORM, dcc.sign(xml)))
    key = dcc.rig.keystore.ds_private(dcc.users["supplier"].eui)
    assert key is not None
    cv5 = signed_pre_command_request(xml, sign_pre_command(pre, key))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(cv5))) == "I99"
    dcc.settle(10)
    [response] = dcc.messages("supplier", MessageKind.RESPONSE)
    assert response.header.response_code == "I0"


def test_signed_pre_command_with_a_bad_signature_is_e100(dcc: Harness) -> None:
    xml = dcc.template("ECS42_7.1_SUCCESS_REQUEST_DUIS.XML")
    pre = _pre_command(dcc, dcc.submit(WebService.TRANSFORM, dcc.sign(xml)))
    wrong_key = dcc.rig.keystore.ds_private(dcc.users["network_operator"].eui)
    assert wrong_key is not None
    cv5 = signed_pre_command_request(xml, sign_pre_command(pre, wrong_key))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(cv5))) == "E100"
    right_key = dcc.rig.keystore.ds_private(dcc.users["supplier"].eui)
    assert right_key is not None
    fixed = dcc.sign(signed_pre_command_request(xml, sign_pre_command(pre, right_key)))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, fixed)) == "I99"  # may try again
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, fixed)) == "E55"  # but only once


def test_signed_pre_command_of_another_command_is_e51(dcc: Harness) -> None:
    xml = dcc.template("ECS42_7.1_SUCCESS_REQUEST_DUIS.XML")
    _pre_command(dcc, dcc.submit(WebService.TRANSFORM, dcc.sign(xml)))
    other = dcc.template("ECS42_7.1_SUCCESS_REQUEST_DUIS.XML")
    other_pre = _pre_command(dcc, dcc.submit(WebService.TRANSFORM, dcc.sign(other)))
    key = dcc.rig.keystore.ds_private(dcc.users["supplier"].eui)
    assert key is not None
    cv5 = signed_pre_command_request(xml, sign_pre_command(other_pre, key))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(cv5))) == "E51"


# --- local delivery and SR 8.13 -------------------------------------------------------------------


def _return_local(dcc: Harness, original: str | None, payload: bytes) -> str:
    body = "<sr:ReturnLocalCommandResponse>"
    if original is not None:
        body += f"<sr:OriginalRequestID>{original}</sr:OriginalRequestID>"
    body += (f"<sr:DeviceGBCSResponse>{base64.b64encode(payload).decode()}"
             "</sr:DeviceGBCSResponse></sr:ReturnLocalCommandResponse>")
    answer = dcc.send("8.13_RETURN_LOCAL_COMMAND_RESPONSE_CS06_REQUEST_DUIS.XML",
                      WebService.NON_DEVICE, body=body)
    return dcc.code(answer)


def test_local_command_then_return_local_command_response(dcc: Harness) -> None:
    xml = dcc.template("ECS17b_4.1.1_REQUEST_DUIS.XML")  # CV 2
    answer = dcc.submit(WebService.NON_DEVICE, dcc.sign(xml))
    response = dcc.checked(answer.body)
    assert response.header.response_code == "I0"
    assert isinstance(response.body, ResponseMessage) and response.body.local_command
    result = dcc.rig.run(dcc.rig.hht.deliver(response.body.local_command))
    assert result.response is not None
    rid = str(response.header.request_id)
    assert _return_local(dcc, None, result.response) == "E081301"
    assert _return_local(dcc, "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1",
                         result.response) == "E081301"
    assert _return_local(dcc, rid, b"not GBCS") == "E081302"
    other = dcc.template("ECS17b_4.1.1_REQUEST_DUIS.XML")
    other_answer = dcc.checked(dcc.submit(WebService.NON_DEVICE, dcc.sign(other)).body)
    assert _return_local(dcc, str(other_answer.header.request_id), result.response) == "E081303"
    assert _return_local(dcc, rid, result.response) == "I99"
    assert _return_local(dcc, rid, result.response) == "E081301"  # used up
    assert not dcc.messages("supplier", MessageKind.RESPONSE)  # nothing went over the WAN


# --- DSP future dating and sequencing -------------------------------------------------------------


def _execute_at(when: dt.datetime) -> str:
    stamp = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return ("<sr:ReadInstantaneousImportRegisters><sr:ExecutionDateTime>"
            f"{stamp}</sr:ExecutionDateTime></sr:ReadInstantaneousImportRegisters>")


def test_dsp_future_dated_request_is_held_until_its_time(dcc: Harness) -> None:
    later = (dcc.rig.clock.now() + dt.timedelta(hours=1)).replace(microsecond=0)
    answer = dcc.send("ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS.XML", body=_execute_at(later))
    assert dcc.code(answer) == "I99"
    assert dcc.emu.processor.held == 1
    dcc.settle(1800)
    assert not dcc.messages("supplier", MessageKind.RESPONSE)
    dcc.settle(1800 + 60)
    assert dcc.emu.processor.held == 0
    [response] = dcc.messages("supplier", MessageKind.RESPONSE)
    assert response.header.response_code == "I0"
    assert response.header.response_date_time >= later


def test_dsp_cancellation_drops_the_held_request_or_is_e52(dcc: Harness) -> None:
    cancel = _execute_at(dt.datetime(3000, 12, 31, tzinfo=dt.UTC))
    assert dcc.code(dcc.send("ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS.XML", body=cancel)) \
        == "E52"
    later = dcc.rig.clock.now() + dt.timedelta(hours=1)
    dcc.send("ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS.XML", body=_execute_at(later))
    assert dcc.code(dcc.send("ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS.XML", body=cancel)) \
        == "I0"
    dcc.settle(7200)
    assert dcc.emu.processor.held == 0
    assert not dcc.messages("supplier", MessageKind.RESPONSE)


def test_dsp_cancellation_asked_for_local_delivery_is_e50(dcc: Harness) -> None:
    """Seed 003 E50: the request asked for a command for local delivery (CV 2 / 3) but
    returns none; the DCC keeps what it holds."""
    later = dcc.rig.clock.now() + dt.timedelta(hours=1)
    dcc.send("ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS.XML", body=_execute_at(later))
    cancel = _execute_at(dt.datetime(3000, 12, 31, tzinfo=dt.UTC))
    for cv, service in ((2, WebService.NON_DEVICE), (3, WebService.SEND_COMMAND)):
        answer = dcc.send("ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS.XML", service, body=cancel,
                          cv=cv)
        assert dcc.code(answer) == "E50"
    assert dcc.emu.processor.held == 1
    dcc.settle(3600 + 60)
    [response] = dcc.messages("supplier", MessageKind.RESPONSE)
    assert response.header.response_code == "I0"


def _sequence(first: bool | None = None, preceding: str | None = None
              ) -> Callable[[etree._Element], None]:
    def change(head: etree._Element) -> None:
        rid = head.find(_sr("RequestID"))
        assert rid is not None
        position = list(head).index(rid) + 1
        if preceding is not None:
            element = etree.Element(_sr("PrecedingServiceRequestID"))
            element.text = preceding
            head.insert(position, element)
        if first is not None:
            element = etree.Element(_sr("FirstInSequence"))
            element.text = "true" if first else "false"
            head.insert(position, element)

    return change


def test_sequenced_requests_run_in_order(dcc: Harness) -> None:
    first_xml = edit(dcc.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"),
                     header=_sequence(first=True))
    first = dcc.checked(dcc.submit(WebService.SEND_COMMAND, dcc.sign(first_xml)).body)
    second_xml = edit(dcc.template("ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS.XML"),
                      header=_sequence(first=False, preceding=str(first.header.request_id)))
    second = dcc.checked(dcc.submit(WebService.SEND_COMMAND, dcc.sign(second_xml)).body)
    assert (first.header.response_code, second.header.response_code) == ("I99", "I99")
    dcc.settle(30)
    order = [r.header.request_id for r in dcc.messages("supplier", MessageKind.RESPONSE)]
    assert order == [first.header.request_id, second.header.request_id]
    assert dcc.emu.processor.outcome(second.header.request_id) == "I0"


def test_sequence_rules_e40_e41_e42_e45(dcc: Harness) -> None:
    base = "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"
    some = "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1"
    bad_first = edit(dcc.template(base), header=_sequence(first=True, preceding=some))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(bad_first))) == "E40"
    local = edit(dcc.template("ECS17b_4.1.1_REQUEST_DUIS.XML"), header=_sequence(first=True))
    assert dcc.code(dcc.submit(WebService.NON_DEVICE, dcc.sign(local))) == "E45"
    circular = dcc.template(base)
    rid = etree.fromstring(circular).findtext(f"{_sr('Header')}/{_sr('RequestID')}")
    circular = edit(circular, header=_sequence(first=False, preceding=rid))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(circular))) == "E42"
    head_xml = edit(dcc.template(base), header=_sequence(first=True))
    head = dcc.checked(dcc.submit(WebService.SEND_COMMAND, dcc.sign(head_xml)).body)
    follow = edit(dcc.template(base),
                  header=_sequence(first=False, preceding=str(head.header.request_id)))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(follow))) == "I99"
    again = edit(dcc.template(base),
                 header=_sequence(first=False, preceding=str(head.header.request_id)))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(again))) == "E41"


def test_request_after_an_undelivered_predecessor_is_e47(dcc: Harness) -> None:
    dcc.emu.processor.wan = _undeliverable  # the SM WAN is down: the first fails with E20
    first_xml = edit(dcc.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"),
                     header=_sequence(first=True))
    first = dcc.checked(dcc.submit(WebService.SEND_COMMAND, dcc.sign(first_xml)).body)
    dcc.settle(5)
    second_xml = edit(dcc.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"),
                      header=_sequence(first=False, preceding=str(first.header.request_id)))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(second_xml))) == "I99"
    dcc.settle(5)
    codes = [r.header.response_code for r in dcc.messages("supplier", MessageKind.RESPONSE)]
    assert codes == ["E20", "E47"]


def test_request_after_a_refused_predecessor_is_e43(dcc: Harness) -> None:
    first_xml = edit(dcc.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"),
                     target="00-DB-12-34-56-78-90-FF", header=_sequence(first=True))
    first = dcc.checked(dcc.submit(WebService.SEND_COMMAND, dcc.sign(first_xml)).body)
    assert first.header.response_code == "E19"
    second_xml = edit(dcc.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"),
                      header=_sequence(first=False, preceding=str(first.header.request_id)))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(second_xml))) == "I99"
    dcc.settle(5)
    codes = [r.header.response_code for r in dcc.messages("supplier", MessageKind.RESPONSE)]
    assert codes == ["E43"]


def test_request_whose_predecessor_stays_unanswered_is_e44() -> None:
    harness = Harness(config=EmulatorConfig(
        duis_port=None, smki_port=None, policy=ProcessingPolicy(sequence_wait_s=100)))
    try:
        async def silent(raw: bytes) -> Any:
            from gbhil.han.network import Delivery, DeliveryStatus

            del raw
            return Delivery(DeliveryStatus.SENT, None)

        harness.emu.processor.wan = silent
        first_xml = edit(harness.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"),
                         header=_sequence(first=True))
        first = harness.checked(harness.submit(WebService.SEND_COMMAND,
                                               harness.sign(first_xml)).body)
        second_xml = edit(harness.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"),
                          header=_sequence(first=False,
                                           preceding=str(first.header.request_id)))
        harness.submit(WebService.SEND_COMMAND, harness.sign(second_xml))
        harness.settle(150)
        codes = [r.header.response_code
                 for r in harness.messages("supplier", MessageKind.RESPONSE)]
        assert codes == ["E44"]
        harness.settle(200)
        codes = [r.header.response_code
                 for r in harness.messages("supplier", MessageKind.RESPONSE)]
        assert codes == ["E44", "E21"]
    finally:
        harness.close()


async def _undeliverable(raw: bytes) -> Any:
    from gbhil.han.network import Delivery, DeliveryStatus

    del raw
    return Delivery(DeliveryStatus.UNDELIVERABLE, None, "no WAN")


def test_no_device_response_is_e21(dcc: Harness) -> None:
    async def silent(raw: bytes) -> Any:
        from gbhil.han.network import Delivery, DeliveryStatus

        del raw
        return Delivery(DeliveryStatus.SENT, None)

    dcc.emu.processor.wan = silent
    assert dcc.code(dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")) == "I99"
    dcc.settle(ProcessingPolicy().response_timeout_s - 1)
    assert not dcc.messages("supplier")
    dcc.settle(2)
    [response] = dcc.messages("supplier", MessageKind.RESPONSE)
    assert response.header.response_code == "E21" and response.is_acknowledgement


# --- firmware version report -> N49 ---------------------------------------------------------------


def test_new_firmware_version_read_by_another_user_raises_n49(dcc: Harness) -> None:
    esme = dcc.emu.inventory.get(ESME)
    dcc.emu.cpl.add(CplEntry(DeviceType.ESME, DeviceModel(esme.manufacturer, esme.model,
                                                          esme.hardware_version),
                             "00000001", ("4.0",), (),
                             certificates=simulated_certificates(DeviceType.ESME)))
    dcc.emu.inventory.update_details(ESME, firmware_version="00000001")
    assert dcc.code(dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", user="network_operator")) \
        == "I99"
    dcc.settle(10)
    assert dcc.emu.inventory.get(ESME).firmware_version == "01000000"  # Current on the CPL
    alerts = dcc.messages("supplier", MessageKind.DCC_ALERT)
    assert {a.body.dcc_alert_code for a in alerts if isinstance(a.body, DCCAlertMessage)} \
        == {"N49"}
    assert not dcc.messages("network_operator", MessageKind.DCC_ALERT)  # it asked


RTDS = CONFORMANCE / "rtds-4.5.0"


@pytest.mark.parametrize("name, expected", [
    ("11.2_CS08/CS08_11.2_SUCCESS_RESPONSE_GBCS.HEX", (FirmwareReport.READ_FIRMWARE, "0123ABCD")),
    ("11.2_CS08/CS08_11.2_ERROR_RESPONSE_GBCS.HEX", None),
    ("11.3_CS06/CS06_11.3_IMMEDIATE_SUCCESS_RESPONSE_GBCS.HEX",
     (FirmwareReport.ACTIVATE_FIRMWARE, "0123ABCE")),
    ("11.3_CS06/CS06_11.3_IMMEDIATE_ERROR_RESPONSE_GBCS.HEX", None),
    ("11.3_CS06/CS06_11.3_FUTURE_DATED_SUCCESS_RESPONSE_GBCS.HEX", None),  # only accepted
    ("11.3_CS06/CS06_11.3_8F66_FUTURE_DATED_SUCCESS_ALERT_GBCS.HEX",
     (FirmwareReport.FUTURE_DATED_ACTIVATION, "0123ABCF")),
    ("11.3_CS06/CS06_11.3_8F67_FUTURE_DATED_ERROR_ALERT_GBCS.HEX", None),
])
def test_reported_firmware_version_from_rtds_bytes(name: str,
                                                   expected: tuple[str, str] | None) -> None:
    path = RTDS / name
    if not path.is_file():
        pytest.skip(f"RTDS message {path} not found (../shared)")
    report = reported_version(decode_message(bytes.fromhex("".join(path.read_text().split()))))
    assert (None if report is None else (report.via, report.version)) == expected


@given(st.binary(max_size=12))
def test_version_text_is_a_duis_firmware_version_or_none(raw: bytes) -> None:
    text = version_text(raw)
    if 1 <= len(raw) <= 4:
        assert text is not None and bytes.fromhex(text) == raw and text == text.upper()
    elif text is not None:
        assert text.encode("ascii") == raw and 5 <= len(text) <= 8


def _listed(dcc: Harness, device_id: str, version: str) -> int:
    """A CPL entry for the SMI model of ``device_id`` with ``version``; its entry id."""
    device = dcc.emu.inventory.get(device_id)
    entry = dcc.emu.cpl.add(CplEntry(device.device_type, DeviceModel(
        device.manufacturer, device.model, device.hardware_version), version, ("4.0",), (),
        certificates=simulated_certificates(device.device_type)))
    return entry.entry_id


def _dcc_alerts(dcc: Harness, user: str) -> list[DCCAlertMessage]:
    return [a.body for a in dcc.messages(user, MessageKind.DCC_ALERT)
            if isinstance(a.body, DCCAlertMessage)]


def _fields(alert: DCCAlertMessage) -> dict[str, str | None]:
    """The FirmwareVersionMismatch body's items."""
    assert isinstance(alert.body, etree._Element), alert.body
    return {etree.QName(e).localname: e.text for e in alert.body}


def test_gsme_version_read_gcs38_by_another_user_raises_n49_to_the_gas_supplier(
        dcc: Harness) -> None:
    """GCS38 (ZCL) responses count like ECS52: SMI updated to the Current version, N49 to
    the GS that did not ask."""
    device_version = dcc.emu.inventory.get(GSME).firmware_version
    _listed(dcc, GSME, "0.9.0")
    dcc.emu.inventory.update_details(GSME, firmware_version="0.9.0")
    assert dcc.code(dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", user="network_operator",
                             target=GSME)) == "I99"
    dcc.settle(3600)
    assert dcc.emu.inventory.get(GSME).firmware_version == device_version
    [alert] = _dcc_alerts(dcc, "supplier")
    assert alert.dcc_alert_code == "N49"
    assert not _dcc_alerts(dcc, "network_operator")


def test_chf_version_read_removed_from_the_cpl_raises_n50_even_to_the_requester(
        dcc: Harness) -> None:
    """N50 has no 'did not submit' exception: the supplier that read the CHF gets it; the
    SMI takes the Removed version and the CHF stays Commissioned (not Suspended)."""
    chf = dcc.emu.inventory.get(CHF)
    running = chf.firmware_version
    model = DeviceModel(chf.manufacturer, chf.model, chf.hardware_version)
    _listed(dcc, CHF, "00000001")
    dcc.emu.inventory.update_details(CHF, firmware_version="00000001")
    entry = dcc.emu.cpl.entry_for(model, running)
    assert entry is not None
    dcc.emu.cpl.remove(entry.entry_id)
    assert dcc.code(dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", target=CHF)) == "I99"
    dcc.settle(60)
    [alert] = _dcc_alerts(dcc, "supplier")
    assert alert.dcc_alert_code == "N50"
    after = dcc.emu.inventory.get(CHF)
    assert (after.firmware_version, after.status) == (running, DeviceStatus.COMMISSIONED)


def test_smets2_ppmid_version_read_cs08_leaves_the_smi_alone(dcc: Harness) -> None:
    """CS08 answers are parsed, but N49-N51 are for SMETS1 PPMIDs only (seed 004)."""
    ppmid = "00-DB-12-34-56-78-90-A4"
    _listed(dcc, ppmid, "00000001")
    dcc.emu.inventory.update_details(ppmid, firmware_version="00000001")
    assert dcc.code(dcc.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML", target=ppmid)) == "I99"
    dcc.settle(60)
    [response] = dcc.messages("supplier", MessageKind.RESPONSE)
    assert isinstance(response.body, ResponseMessage) and response.body.gbcs_payload
    report = reported_version(decode_message(response.body.gbcs_payload))
    assert report == ReportedVersion(FirmwareReport.READ_FIRMWARE, "01000000")
    assert dcc.emu.inventory.get(ppmid).firmware_version == "00000001"
    assert not _dcc_alerts(dcc, "supplier")


def _activate(dcc: Harness, image_hash: bytes, at: dt.datetime | None = None) -> None:
    """11.3 on the ESME: CV 4 pre-command, signed by the supplier, sent with CV 5."""
    when = "" if at is None else (
        f"<sr:ExecutionDateTime>{at.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%S.000Z')}"
        "</sr:ExecutionDateTime>")
    xml = edit(dcc.template("CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML"),
               body=f"<sr:ActivateFirmware>{when}<sr:FirmwareHash>{image_hash.hex().upper()}"
                    "</sr:FirmwareHash></sr:ActivateFirmware>")
    pre = _pre_command(dcc, dcc.submit(WebService.TRANSFORM, dcc.sign(xml)))
    key = dcc.rig.keystore.ds_private(dcc.users["supplier"].eui)
    assert key is not None
    cv5 = signed_pre_command_request(xml, sign_pre_command(pre, key))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(cv5))) == "I99"


def _stage(dcc: Harness, version: str) -> bytes:
    from gbhil.devices import firmware

    return firmware.slots(dcc.rig.esme).stage(f"image {version}".encode(),
                                              bytes.fromhex(version))


@pytest.mark.parametrize("listing, alert, smi_after", [
    ("current", None, "02000000"),      # 11.3 + Current: SMI updated, no N49 (11.2 only)
    ("removed", "N50", "02000000"),     # SMI updated, N50 to the supplier
    ("unlisted", "N51", "01000000"),    # SMI kept, N51
])
def test_activate_firmware_cs06_outcome_updates_the_smi_per_seed_004(
        dcc: Harness, listing: str, alert: str | None, smi_after: str) -> None:
    image_hash = _stage(dcc, "02000000")
    if listing != "unlisted":
        entry_id = _listed(dcc, ESME, "02000000")
        if listing == "removed":
            dcc.emu.cpl.remove(entry_id)
    _activate(dcc, image_hash)
    dcc.settle(60)
    [response] = dcc.messages("supplier", MessageKind.RESPONSE)
    assert response.header.response_code == "I0"
    assert dcc.emu.inventory.get(ESME).firmware_version == smi_after
    assert [a.dcc_alert_code for a in _dcc_alerts(dcc, "supplier")] == (
        [] if alert is None else [alert])


def test_activation_that_fails_on_the_device_changes_nothing(dcc: Harness) -> None:
    """A CS06 hash mismatch repeats the running version: no successful completion."""
    _stage(dcc, "02000000")
    _activate(dcc, bytes(32))
    dcc.settle(60)
    assert dcc.emu.inventory.get(ESME).firmware_version == "01000000"
    assert not _dcc_alerts(dcc, "supplier")


def test_future_dated_activation_alert_0x00ca_raises_n51_when_due(dcc: Harness) -> None:
    image_hash = _stage(dcc, "02000000")  # not on the CPL
    at = (dcc.rig.clock.now() + dt.timedelta(hours=1)).replace(microsecond=0)
    _activate(dcc, image_hash, at)
    dcc.settle(600)
    assert not _dcc_alerts(dcc, "supplier"), "accepted for later: nothing to compare yet"
    dcc.settle(3600)
    [alert] = _dcc_alerts(dcc, "supplier")
    assert alert.dcc_alert_code == "N51"
    fields = _fields(alert)
    assert (fields["FirmwareVersionSMI"], fields["FirmwareVersionDevice"]) == (
        "01000000", "02000000")
    assert dcc.emu.inventory.get(ESME).firmware_version == "01000000"


# --- AD1 power outage -----------------------------------------------------------------------------


@pytest.mark.parametrize("minutes, expected", [(2, 0), (3, 4), (4, 4)])
def test_ad1_after_three_minutes_to_the_meters_parties(dcc: Harness, minutes: int,
                                                      expected: int) -> None:
    start = dcc.rig.clock.now()
    dcc.emu.processor.power_event("outage", CHF, start)
    dcc.settle(minutes * 60)
    dcc.emu.processor.power_event("restored", CHF, dcc.rig.clock.now())
    dcc.settle(60)
    ad1 = [(who, dcc.checked(body)) for who, body, kind in dcc.sent
           if kind is MessageKind.DCC_ALERT]
    assert len(ad1) == expected
    if expected:
        seen = set()
        for who, response in ad1:
            assert isinstance(response.body, DCCAlertMessage)
            event = response.body.body
            assert isinstance(event, PowerOutageEvent)
            assert event.start_date_time == wire_datetime(start)
            seen.add((who, event.mpxn))
        assert seen == {(SUPPLIER, "1900000000013"), (NETWORK, "1900000000013"),
                        (SUPPLIER, "7000000001"), (NETWORK, "7000000001")}


# --- throttling and traffic management ------------------------------------------------------------


def test_alert_throttle_consolidates_and_numbers_alerts() -> None:
    clock = SteppedClock()
    out: list[tuple[int | None, int | None, int]] = []
    throttle = AlertThrottle(clock, AlertThrottlePolicy(threshold=3, window_s=60,
                                                        forward_interval_s=30),
                             lambda user, r: out.append(r))  # type: ignore[arg-type,func-returns-value]
    for n in range(10):
        throttle.submit("u", "0x8F36", lambda seq, count, n=n: (seq, count, n))  # type: ignore[misc]
        clock.advance(1)
    assert out[:3] == [(None, None, 0), (None, None, 1), (None, None, 2)]
    assert out[3] == (1, 1, 3)  # throttling starts with the 4th alert in the window
    assert len(out) == 4
    clock.advance(30)
    assert out[4] == (2, 6, 9)  # the latest of the 6 held back, numbered 2
    clock.advance(200)
    throttle.submit("u", "0x8F36", lambda seq, count: (seq, count, 99))
    assert out[-1] == (None, None, 99)  # quiet window passed: no longer throttled


def test_device_alert_storm_is_throttled_with_valid_fields(dcc: Harness) -> None:
    async def outage() -> None:
        dcc.rig.mains.set_output(False)
        await dcc.rig.clock.sleep(240)
        dcc.rig.mains.set_output(True)
        await dcc.rig.clock.sleep(120)

    dcc.rig.run(outage())
    raw = next(r for r in dcc.rig.wan if b"\x8f\x36" in r)
    dcc.sent.clear()
    for _ in range(25):
        dcc.emu.processor.device_message(raw)
    dcc.settle(300)
    alerts = [r for r in dcc.messages("network_operator", MessageKind.DEVICE_ALERT)]
    assert all(isinstance(a.body, DeviceAlertMessage) and a.body.alert_code == 0x8F36
               for a in alerts)
    throttled = [a.body for a in alerts
                 if isinstance(a.body, DeviceAlertMessage)
                 and a.body.throttled_alert_sequence_id is not None]
    assert len(alerts) < 25 and throttled
    assert [t.throttled_alert_sequence_id for t in throttled] == list(range(1, len(throttled) + 1))
    assert sum(t.throttled_alert_count or 0 for t in throttled) + (len(alerts) - len(throttled)) \
        == 25


def test_traffic_manager_429_for_non_priority_requests_only() -> None:
    clock = SteppedClock()
    traffic = TrafficManager(clock, frozenset({"2.2"}))
    user = DccUser(SUPPLIER, "supplier", frozenset({"IS"}), capacity_per_minute=2)
    traffic.admit(user, "4.1.1")
    traffic.admit(user, "4.1.1")
    with pytest.raises(OverCapacity) as refused:
        traffic.admit(user, "4.1.1")
    assert refused.value.retry_after == 30
    traffic.admit(user, "2.2")  # priority requests are never refused
    clock.advance(30)
    traffic.admit(user, "4.1.1")


# --- restart --------------------------------------------------------------------------------------


def test_acknowledged_requests_get_e21_after_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "dcc.sqlite")
    first = Harness(config=EmulatorConfig(duis_port=None, smki_port=None, store_path=db),
                    db_path=db)
    try:
        async def never(raw: bytes) -> Any:
            del raw
            await first.rig.clock.sleep(10_000)

        first.emu.processor.wan = never
        ack = first.checked(first.send("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML").body)
        assert ack.header.response_code == "I99"
    finally:
        first.rig.close()  # "killed": no orderly stop
    second = Harness(config=EmulatorConfig(duis_port=None, smki_port=None, store_path=db),
                     db_path=db, capture_sink=False)
    try:
        queued = second.emu.outbox.queued() + second.emu.outbox.failed()
        assert [e.request_id for e in queued] == [str(ack.header.request_id)]
        response = second.checked(queued[0].body)
        assert response.header.response_code == "E21"
        assert second.emu.inventory.get(ESME).status is DeviceStatus.COMMISSIONED
    finally:
        second.close()


def test_sequenced_gas_read_with_encrypted_response_is_e54(dcc: Harness) -> None:
    """Seed 003 E54: a sequenced Gas Service Request that returns encrypted data (GCS13a's
    consumption read is encrypted by the GSME/GPF) is refused at acknowledgement; the same
    read outside a sequence is acknowledged, and a sequenced gas read whose response is not
    encrypted is too."""
    encrypted = "GCS13a_4.1.1_SUCCESS_RELIABLE_GSME_REQUEST_DUIS.XML"
    sequenced = edit(dcc.template(encrypted), header=_sequence(first=True))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(sequenced))) == "E54"
    alone = dcc.template(encrypted)
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(alone))) == "I99"
    plain = edit(dcc.template("GCS21d_6.2.3_SUCCESS_REQUEST_DUIS.XML"),
                 header=_sequence(first=True))
    assert dcc.code(dcc.submit(WebService.SEND_COMMAND, dcc.sign(plain))) == "I99"


@pytest.mark.parametrize("alert_lost", [False, True], ids=["alert", "alert-lost"])
def test_future_dated_activation_without_its_outcome_alert_is_e30(
        dcc: Harness, alert_lost: bool) -> None:
    """Seed 003 E30: the ESME accepts a future-dated CS06 at once; its 0x8F66 outcome alert
    (message code 0x00CA, naming the command's originator counter) must follow by the
    execution date-time plus ``future_dated_outcome_s``, or the User gets E30 for it."""
    image_hash = _stage(dcc, "02000000")
    due = dcc.rig.clock.now() + dt.timedelta(hours=1)
    if alert_lost:  # the outcome alert is lost on its way to the DCC
        deliver = dcc.rig.on_wan
        assert deliver is not None

        def lossy(raw: bytes) -> None:
            if decode_message(raw).frame.gs.message_code != 0x00CA:
                deliver(raw)

        dcc.rig.on_wan = lossy
    _activate(dcc, image_hash, at=due)
    dcc.settle(60)
    [accepted] = dcc.messages("supplier", MessageKind.RESPONSE)
    assert accepted.header.response_code == "I0"
    grace = dcc.emu.processor.policy.future_dated_outcome_s
    dcc.settle(3600 + grace - 120)
    assert [r.header.response_code for r in dcc.messages("supplier", MessageKind.RESPONSE)] == [
        "I0"], "nothing before the deadline"
    dcc.settle(300)
    responses = dcc.messages("supplier", MessageKind.RESPONSE)
    alerts = dcc.messages("supplier", MessageKind.DEVICE_ALERT)
    if alert_lost:
        assert [r.header.response_code for r in responses] == ["I0", "E30"]
        assert responses[1].header.request_id == accepted.header.request_id
        assert alerts == []
    else:
        assert [r.header.response_code for r in responses] == ["I0"]
        assert len(alerts) == 1
