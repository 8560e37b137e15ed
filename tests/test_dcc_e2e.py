"""End to end on the simulated rig: signed DUIS templates over HTTP -> acknowledgement ->
GBCS over the WAN to the simulated devices -> DUIS responses and alerts POSTed to each
User's receive endpoint, signed by the DCC; critical commands, local delivery, AD1, the
ZAZ1 credentials DCC Boxed tools use, and ``gbhil serve`` / ``gbhil duis send``."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gbhil.cli_dcc import (
    command_variant_of,
    prepare_request,
    request_id_of,
    service_path,
    sign_pre_command,
    signed_pre_command_request,
)
from gbhil.dcc.emulator import EmulatorConfig, default_emulator, zaz1_keystore
from gbhil.dcc.endpoint import ReceiveEndpoint
from gbhil.dcc.users import UserDirectory
from gbhil.duis.model import (
    DCCAlertMessage,
    DeviceAlertMessage,
    PowerOutageEvent,
    Response,
    ResponseMessage,
    parse_response,
)
from gbhil.duis.xmldsig import certificate_resolver, sign, verify
from gbhil.gbcs.frame import Cra
from gbhil.gbcs.message import decode_message
from gbhil.gbcs.security import Check, verify_mac
from gbhil.rigs.simulated import SimulatedRig
from tests.conftest import CONFORMANCE, ROOT
from tests.test_dcc_processing import TEMPLATES, Harness, requires_conformance

pytestmark = requires_conformance

ESME = "00-DB-12-34-56-78-90-A0"
HTTP_CONFIG = EmulatorConfig(duis_port=0, smki_port=0)


class Rig(Harness):
    """The harness over HTTP, with a receive endpoint per User."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(config=kw.pop("config", HTTP_CONFIG), capture_sink=False, **kw)
        self.receivers: dict[str, ReceiveEndpoint] = {}
        for name in ("supplier", "network_operator"):
            receiver = ReceiveEndpoint(path=f"/rrs/{name}")
            self.rig.run(receiver.start())
            self.users.update(self.users[name].user_id, receive_url=receiver.url)
            self.receivers[name] = receiver

    def post(self, signed: bytes, path: str | None = None) -> Response:
        """POST to the web service of the request's CV; the checked synchronous answer."""
        url = self.emu.duis_url + (path or service_path(command_variant_of(signed)))

        async def go() -> tuple[int, bytes]:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as s,
                s.post(url, data=signed, headers={"Content-Type": "application/xml"}) as reply,
            ):
                return reply.status, await reply.read()

        status, body = self.rig.run(go())
        assert status == 200, body
        return self.checked(body)

    def received(self, name: str, count: int = 1, within: float = 600.0) -> list[Response]:
        receiver = self.receivers[name]
        self.rig.run(receiver.wait_for(lambda m: len(m) >= count, within))
        return [self.checked(m) for m in receiver.messages]

    def close(self) -> None:
        for receiver in self.receivers.values():
            self.rig.run(receiver.stop())
        super().close()


@pytest.fixture()
def e2e() -> Any:
    rig = Rig()
    yield rig
    rig.close()


def test_read_firmware_version_end_to_end(e2e: Rig) -> None:
    signed = e2e.sign(e2e.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"))
    ack = e2e.post(signed)
    assert ack.header.response_code == "I99" and ack.is_acknowledgement
    [response] = e2e.received("supplier")
    assert response.header.response_code == "I0"
    assert response.header.request_id == ack.header.request_id
    assert str(response.header.response_id).startswith(ESME)
    assert isinstance(response.body, ResponseMessage) and response.body.gbcs_payload
    gbcs = decode_message(response.body.gbcs_payload)
    gs = gbcs.frame.gs
    assert gs.cra is Cra.RESPONSE and gs.originator_counter == ack.header.request_id.counter
    assert verify_mac(e2e.rig.dcc, gbcs.frame) is Check.VERIFIED
    assert not e2e.receivers["network_operator"].messages


def test_gas_read_through_the_gpf(e2e: Rig) -> None:
    ack = e2e.post(e2e.sign(e2e.template("GCS13a_4.1.1_SUCCESS_RELIABLE_GSME_REQUEST_DUIS.XML")))
    assert ack.header.response_code == "I99"
    [response] = e2e.received("supplier", within=3600)
    assert response.header.response_code == "I0"


def test_critical_command_pre_command_signed_pre_command_response(e2e: Rig) -> None:
    request = e2e.template("ECS42_7.1_SUCCESS_REQUEST_DUIS.XML")
    transformed = e2e.post(e2e.sign(request))
    assert transformed.header.response_code == "I0"
    assert isinstance(transformed.body, ResponseMessage) and transformed.body.pre_command
    pre = transformed.body.pre_command.gbcs_payload
    key = e2e.rig.keystore.ds_private(e2e.users["supplier"].eui)
    assert key is not None
    cv5 = signed_pre_command_request(request, sign_pre_command(pre, key))
    ack = e2e.post(e2e.sign(cv5))
    assert ack.header.response_code == "I99"
    [response] = e2e.received("supplier")
    assert response.header.response_code == "I0"
    assert response.header.request_id == transformed.header.request_id
    gs = decode_message(response.body.gbcs_payload).frame.gs  # type: ignore[union-attr,arg-type]
    assert gs.message_code == 0x004F  # ECS42 Enable Supply


def test_local_delivery_through_the_hht_and_return_of_the_response(e2e: Rig) -> None:
    answer = e2e.post(e2e.sign(e2e.template("ECS17b_4.1.1_REQUEST_DUIS.XML")))  # CV 2
    assert answer.header.response_code == "I0"
    assert isinstance(answer.body, ResponseMessage) and answer.body.local_command
    wan_before = len(e2e.rig.wan)
    result = e2e.rig.run(e2e.rig.hht.deliver(answer.body.local_command))
    assert result.response is not None and not result.timed_out
    assert len(e2e.rig.wan) == wan_before  # the device answered the HHT, not the WAN
    xml = e2e.template("8.13_RETURN_LOCAL_COMMAND_RESPONSE_CS06_REQUEST_DUIS.XML")
    xml = xml.replace(b"90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1000",
                      str(answer.header.request_id).encode())
    head, _, tail = xml.partition(b"<sr:DeviceGBCSResponse>")
    xml = (head + b"<sr:DeviceGBCSResponse>" + base64.b64encode(result.response)
           + b"</sr:DeviceGBCSResponse>" + tail.partition(b"</sr:DeviceGBCSResponse>")[2])
    returned = e2e.post(e2e.sign(xml))
    assert returned.header.response_code == "I99"


def test_duplicate_request_id_over_http_is_e55(e2e: Rig) -> None:
    signed = e2e.sign(e2e.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"))
    assert e2e.post(signed).header.response_code == "I99"
    assert e2e.post(signed).header.response_code == "E55"
    assert len(e2e.received("supplier")) == 1


def test_read_inventory_by_device_with_map_id(e2e: Rig) -> None:
    answer = e2e.post(e2e.sign(e2e.template("8.2_READ_INVENTORY_REQUEST_DUIS.XML")))
    assert answer.header.response_code == "I0"
    assert isinstance(answer.body, ResponseMessage) and answer.body.other is not None
    assert b"<sr:MAPID>GBHL</sr:MAPID>" in answer.to_xml()


@pytest.mark.parametrize("minutes, expected", [(4, 2), (2, 0)])
def test_mains_outage_raises_ad1_only_after_three_minutes(e2e: Rig, minutes: int,
                                                          expected: int) -> None:
    async def outage() -> None:
        e2e.rig.mains.set_output(False)
        await e2e.rig.clock.sleep(minutes * 60)
        e2e.rig.mains.set_output(True)
        await e2e.rig.clock.sleep(120)

    e2e.rig.run(outage())
    e2e.settle(10)
    for name in ("supplier", "network_operator"):
        messages = [m for m in (e2e.checked(b) for b in e2e.receivers[name].messages)]
        ad1 = [m.body for m in messages if isinstance(m.body, DCCAlertMessage)]
        assert len(ad1) == expected, name
        for alert in ad1:
            assert alert.dcc_alert_code == "AD1" and isinstance(alert.body, PowerOutageEvent)
            assert alert.body.comms_hub_device_id == "00-DB-12-34-56-78-90-A2"
        assert sorted(a.body.mpxn for a in ad1) == (  # type: ignore[union-attr]
            ["1900000000013", "7000000001"] if expected else [])
    restore = [m for m in (e2e.checked(b) for b in e2e.receivers["network_operator"].messages)
               if isinstance(m.body, DeviceAlertMessage)]
    assert [m.body.alert_code for m in restore] == [0x8F36 if minutes >= 3 else 0x8F35]  # type: ignore[union-attr]


# --- ZAZ1: DCC Boxed's published credentials ------------------------------------------------------


def test_zaz1_credentials_sign_and_verify_like_dcc_boxed() -> None:
    zaz1 = CONFORMANCE / "zaz1"
    if not (zaz1 / "keystore.json").is_file():
        pytest.skip(f"ZAZ1 keystore not found under {zaz1}")
    rig = SimulatedRig.build(seed=4, keystore=zaz1_keystore(zaz1))
    rig.run(rig.start())
    users = UserDirectory.from_keystore(rig.keystore)
    emulator = default_emulator(rig, users=users, config=HTTP_CONFIG)
    receiver = ReceiveEndpoint()
    try:
        rig.run(receiver.start())
        users.update("90-B3-D5-1F-30-01-00-00", receive_url=receiver.url)
        rig.run(emulator.start())
        orgkeys = zaz1 / "orgkeys"
        key = serialization.load_der_private_key(
            (orgkeys / "xml-sign-90B3D51F30010000-ds.key").read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(
            (orgkeys / "xml-sign-90B3D51F30010000-ds.pem").read_bytes())
        request = prepare_request(
            (TEMPLATES / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML").read_bytes(), counter=424242)
        signed = sign(request, key, cert)  # type: ignore[arg-type]

        async def go() -> bytes:
            async with (
                aiohttp.ClientSession() as s,
                s.post(f"{emulator.duis_url}/api/v1/serviceS", data=signed) as r,
            ):
                return await r.read()

        ack = rig.run(go())
        dsp = x509.load_pem_x509_certificate(
            (orgkeys / "dsp-xml-sign-90B3D51F30000002-ds.pem").read_bytes())
        verify(ack, certificate_resolver([dsp]), at=rig.clock.now())
        assert parse_response(ack).header.response_code == "I99"
        rig.run(receiver.wait_for(lambda m: len(m) >= 1, 600))
        [message] = receiver.messages
        verify(message, certificate_resolver([dsp]), at=rig.clock.now())
        assert parse_response(message).header.response_code == "I0"
    finally:
        rig.run(emulator.stop())
        rig.run(receiver.stop())
        rig.close()


# --- every template: the outcome table ----------------------------------------------------------


def test_every_template_gets_a_signed_valid_duis_outcome(e2e: Rig) -> None:
    """Each template, re-signed by its originator where that is a rig User, on its CV's path.
    The outcome table is printed (pytest -s); nothing may crash or come back unsigned."""
    outcomes: Counter[str] = Counter()
    rows: list[tuple[str, str]] = []
    for path in sorted(TEMPLATES.glob("*.XML")):
        raw = path.read_bytes()
        originator = request_id_of(raw).originator
        user = e2e.users.get(originator)
        xml = e2e.template(path.name)
        signed = user.sign(xml) if user is not None else e2e.sign(xml)
        answer = e2e.post(signed)
        code = answer.header.response_code
        outcomes[code] += 1
        rows.append((path.name, code))
    e2e.settle(3600)
    print("\noutcome table (template -> synchronous DUIS code):")
    for name, code in rows:
        print(f"  {code:<8} {name}")
    print("totals:", dict(sorted(outcomes.items())))
    assert sum(outcomes.values()) == len(rows) > 100
    assert outcomes["I99"] + outcomes["I0"] > len(rows) // 2
    for receiver in e2e.receivers.values():
        for message in receiver.messages:
            e2e.checked(message)  # XSD-valid and signed by the DCC


# --- gbhil serve / gbhil duis send ----------------------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gbhil.cli", *args]


def test_serve_then_duis_send(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        _cli("serve", "--port", "0", "--smki-port", "0", "--work-dir", str(tmp_path)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line, server.stderr.read() if server.stderr else ""
        ready = json.loads(line)
        assert {u["name"] for u in ready["users"]} >= {"supplier", "network_operator"}
        assert Path(ready["users"][0]["key"]).is_file()
        sent = subprocess.run(
            _cli("duis", "send", str(TEMPLATES / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"),
                 "--url", ready["duis"], "--json", "--timeout", "30"),
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        assert sent.returncode == 0, sent.stderr
        items = [json.loads(x) for x in sent.stdout.splitlines()]
        assert [(i["channel"], i["responseCode"]) for i in items][:2] == [("sync", "I99"),
                                                                          ("async", "I0")]
        assert all(i["signature"] == "verified" for i in items)
        assert items[1]["gbcs"]["header"]["useCase"] == "ECS52"
        critical = subprocess.run(
            _cli("duis", "send", str(TEMPLATES / "ECS42_7.1_SUCCESS_REQUEST_DUIS.XML"),
                 "--url", ready["duis"], "--json", "--timeout", "30"),
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        assert critical.returncode == 0, critical.stderr
        codes = [json.loads(x)["responseCode"] for x in critical.stdout.splitlines()]
        assert codes[:3] == ["I0", "I99", "I0"]  # pre-command, CV 5 ack, device response
        refused = subprocess.run(
            _cli("duis", "send", str(TEMPLATES / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"),
                 "--url", "http://127.0.0.1:9", "--key", str(ready["users"][0]["key"]),
                 "--cert", str(ready["users"][0]["certificate"])),
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        assert refused.returncode == 2
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
