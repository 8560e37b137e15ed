"""The DUIS web services over real HTTP on the rig's stepped loop: DCC Boxed paths, HTTP
statuses before a DUIS answer is possible (XXE, size, 429), mutual TLS with the DUIS cipher
suite, the gbhil extension, the SMKI service, and delivery retries and the failed queue."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import sqlite3
import ssl
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from lxml import etree

from gbhil.dcc.delivery import MessageKind, Outcome
from gbhil.dcc.emulator import EmulatorConfig, TlsFiles
from gbhil.dcc.endpoint import (
    DEVICE_MAX_BYTES,
    DUIS_TLS_CIPHERS,
    ReceiveEndpoint,
    client_ssl_context,
    generate_dccki,
)
from gbhil.dcc.store import GroupCommit, open_store
from gbhil.duis.model import WebService, format_datetime, parse_response
from gbhil.duis.xmldsig import certificate_resolver, verify
from tests.test_dcc_processing import SAMPLES, Harness, edit, requires_conformance

pytestmark = requires_conformance

HTTP_CONFIG = EmulatorConfig(duis_port=0, smki_port=0)


@pytest.fixture()
def web() -> Any:
    harness = Harness(config=HTTP_CONFIG, capture_sink=False)
    yield harness
    harness.close()


async def _http(method: str, url: str, data: bytes | None = None,
                ssl_context: ssl.SSLContext | None = None,
                payload: Any = None) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session,
        session.request(method, url, data=data, json=payload, ssl=ssl_context) as r,
    ):
        return r.status, dict(r.headers), await r.read()


def http(h: Harness, method: str, path: str, data: bytes | None = None, **kw: Any
         ) -> tuple[int, dict[str, str], bytes]:
    assert h.emu.duis_url is not None
    return h.rig.run(_http(method, h.emu.duis_url + path, data, **kw))


def smki(h: Harness, path: str, data: bytes | None = None, method: str = "POST"
         ) -> tuple[int, dict[str, str], bytes]:
    assert h.emu.smki_url is not None
    return h.rig.run(_http(method, h.emu.smki_url + path, data))


# --- HTTP before DUIS -----------------------------------------------------------------------------


def test_xxe_sample_is_refused_before_parsing(web: Harness) -> None:
    status, _, body = http(web, "POST", "/api/v1/serviceS", (SAMPLES / "duis-xxe.xml")
                           .read_bytes())
    assert status == 400 and b"DOCTYPE" in body


def test_oversize_body_is_413(web: Harness) -> None:
    xml = web.sign(web.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"))
    padded = xml + b" " * (DEVICE_MAX_BYTES + 1 - len(xml))
    status, _, _ = http(web, "POST", "/api/v1/serviceS", padded)
    assert status == 413
    status, _, _ = http(web, "POST", "/api/v1/serviceS", xml)  # the same, within the cap
    assert status == 200


def test_not_xml_or_not_valid_duis_is_400(web: Harness) -> None:
    assert http(web, "POST", "/api/v1/serviceD", b"hello")[0] == 400
    invalid = (SAMPLES / "ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS-invalid.XML").read_bytes()
    status, _, body = http(web, "POST", "/api/v1/serviceS", invalid)
    assert status == 400 and b"RequestID" in body
    assert http(web, "GET", "/api/v1/serviceS")[0] == 405


def test_sync_answers_are_signed_application_xml(web: Harness) -> None:
    status, headers, body = http(web, "POST", "/api/v1/serviceS",
                                 web.sign(web.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")))
    assert status == 200 and headers["Content-Type"].startswith("application/xml")
    assert web.checked(body).header.response_code == "I99"
    status, _, body = http(web, "POST", "/api/v1/serviceD",
                           web.sign(web.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")))
    assert web.checked(body).header.response_code == "E13"
    unsigned = web.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")
    status, _, body = http(web, "POST", "/api/v1/serviceS", unsigned)
    assert status == 200 and web.checked(body).header.response_code == "E100"


def test_over_capacity_is_429_with_retry_after(web: Harness) -> None:
    supplier = web.users["supplier"]
    status, _, _ = http(web, "PUT", f"/gbhil/users/{supplier.user_id}",
                        payload={"capacityPerMinute": 2})
    assert status == 200
    answers = [http(web, "POST", "/api/v1/serviceD",
                    web.sign(web.template("8.2_READ_INVENTORY_REQUEST_DUIS.XML")))
               for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 429]
    assert answers[2][1]["Retry-After"] == "30"
    assert web.users["network_operator"].capacity_per_minute is None
    other = http(web, "POST", "/api/v1/serviceD",
                 web.sign(web.template("8.2_READ_INVENTORY_REQUEST_DUIS.XML",
                                       user="network_operator"), "network_operator"))
    assert other[0] == 200


def test_info_names_users_without_keys(web: Harness) -> None:
    status, _, body = http(web, "GET", "/gbhil/info")
    assert status == 200 and b"PRIVATE" not in body
    info = json.loads(body)
    assert {u["id"] for u in info["users"]} >= {"90-B3-D5-1F-30-01-00-00",
                                               "90-B3-D5-1F-30-02-00-00"}
    assert info["paths"]["SEND_COMMAND"] == "/api/v1/serviceS"
    assert http(web, "PUT", "/gbhil/users/00-00-00-00-00-00-00-01", payload={})[0] == 404


# --- SMKI service ---------------------------------------------------------------------------------


def _search(subject: str, eui: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><CertificateSearchRequest><{subject}>{eui}'
            f"</{subject}></CertificateSearchRequest>").encode()


def test_smki_search_and_retrieve_like_dcc_boxed(web: Harness) -> None:
    status, headers, body = smki(web, "/services/certificatesearch?apikey=any",
                                 _search("CertificateSubjectAltName", "00-DB-12-34-56-78-90-A4"))
    assert status == 200 and headers["Content-Type"].startswith("application/xml")
    results = etree.fromstring(body).findall("Result")
    assert sorted(r.findtext("CertificateUsage") for r in results) == ["DS", "KA"]
    ka = next(r for r in results if r.findtext("CertificateUsage") == "KA")
    request = (b'<?xml version="1.0" encoding="utf-8"?><CertificateDataRequest><CertificateSerial>'
               + ka.findtext("CertificateSerial").encode() + b"</CertificateSerial>"  # type: ignore[union-attr]
               b"</CertificateDataRequest>")
    status, _, body = smki(web, "/services/retrievecertificate", request)
    assert status == 200
    der = etree.fromstring(body).findtext("CertificateResponse/CertificateBody")
    served = x509.load_der_x509_certificate(base64.b64decode(der or ""))
    expected = web.rig.keystore.certificate("00DB1234567890A4", "ka")
    assert served == expected


def test_smki_organisation_search_lists_the_xml_signing_certificate(web: Harness) -> None:
    status, _, body = smki(web, "/services/certificatesearch",
                           _search("CertificateSubjectName", "90-B3-D5-1F-30-01-00-00"))
    assert status == 200
    roles = {r.findtext("CertificateRole") for r in etree.fromstring(body).findall("Result")}
    assert {"2", "135"} <= roles
    supplier = web.users["supplier"]
    assert supplier.xml_certificate is not None
    serial = f"{supplier.xml_certificate.serial_number:X}"
    status, _, pem = smki(web, f"/certificates/{serial}", method="GET")
    assert status == 200
    assert x509.load_pem_x509_certificate(pem) == supplier.xml_certificate


def test_smki_not_found_is_402_and_a_bad_query_401(web: Harness) -> None:
    status, _, _ = smki(web, "/services/certificatesearch",
                        _search("CertificateSubjectAltName", "11-22-33-44-55-66-77-88"))
    assert status == 402
    assert smki(web, "/services/certificatesearch", b"<nonsense/>")[0] == 401
    assert smki(web, "/services/retrievecertificate",
                b"<CertificateDataRequest><CertificateSerial>ZZ</CertificateSerial>"
                b"</CertificateDataRequest>")[0] == 401


# --- mutual TLS -----------------------------------------------------------------------------------


def test_mutual_tls_with_the_duis_cipher_suite(tmp_path: Path) -> None:
    dccki = generate_dccki(tmp_path, ["90-B3-D5-1F-30-01-00-00"])
    client_cert, client_key = dccki.clients["90-B3-D5-1F-30-01-00-00"]
    tls = TlsFiles(str(dccki.server_certificate), str(dccki.server_key),
                   str(dccki.ca_certificate))
    harness = Harness(config=EmulatorConfig(duis_port=0, smki_port=None, tls=tls),
                      capture_sink=False)
    try:
        assert harness.emu.duis_url is not None and harness.emu.duis_url.startswith("https:")
        port = int(harness.emu.duis_url.rsplit(":", 1)[1])
        good = client_ssl_context(dccki.ca_certificate, client_cert, client_key)

        async def handshake(context: ssl.SSLContext) -> tuple[str, str]:
            import asyncio

            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                           server_hostname="localhost")
            ssl_object = writer.get_extra_info("ssl_object")
            cipher = ssl_object.cipher()
            writer.write(b"GET /gbhil/info HTTP/1.1\r\nHost: localhost\r\n"
                         b"Connection: close\r\n\r\n")
            reply = await reader.read()
            writer.close()
            assert reply.startswith(b"HTTP/1.1 200")
            return cipher[0], cipher[1]

        assert harness.rig.run(handshake(good)) == (DUIS_TLS_CIPHERS, "TLSv1.2")
        anonymous = client_ssl_context(dccki.ca_certificate)
        with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
            harness.rig.run(handshake(anonymous))
        signed = harness.sign(harness.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"))
        status, _, body = http(harness, "POST", "/api/v1/serviceS", signed, ssl_context=good)
        assert status == 200 and harness.checked(body).header.response_code == "I99"
    finally:
        harness.close()


# --- delivery: retries, failed queue, redelivery, 2-day hold --------------------------------------


def test_undelivered_responses_are_retried_queued_and_redelivered(web: Harness) -> None:
    receiver = ReceiveEndpoint()
    web.rig.run(receiver.start())
    try:
        supplier = web.users["supplier"]
        web.users.update(supplier.user_id, receive_url=receiver.url)
        receiver.refuse = True
        start = web.rig.clock.monotonic()
        _, _, body = http(web, "POST", "/api/v1/serviceS",
                          web.sign(web.template("ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")))
        rid = str(parse_response(body).header.request_id)
        web.settle(200)
        outbox = web.emu.outbox
        assert not outbox.failed(supplier.user_id)  # still retrying within 300 s
        web.settle(150)
        [failed] = outbox.failed(supplier.user_id)
        assert failed.request_id == rid and failed.attempts > 2
        record = next(r for r in outbox.history if r.outcome is Outcome.FAILED)
        assert record.at.timestamp() - web.rig.clock.to_datetime(start).timestamp() <= 300
        receiver.refuse = False
        web.settle(61)  # the failed queue is probed once a minute
        assert not outbox.failed(supplier.user_id)
        [delivered] = receiver.messages
        assert str(web.checked(delivered).header.request_id) == rid
    finally:
        web.rig.run(receiver.stop())


def test_failed_device_alerts_are_dropped_after_two_days(web: Harness) -> None:
    outbox = web.emu.outbox
    network = web.users["network_operator"]
    web.users.update(network.user_id, receive_url=None)
    alert = outbox.enqueue(network.user_id, b"<alert/>", MessageKind.DEVICE_ALERT)
    response = outbox.enqueue(network.user_id, b"<response/>", MessageKind.RESPONSE)
    web.settle(400)
    assert {e.id for e in outbox.failed(network.user_id)} == {alert.id, response.id}
    web.settle(dt.timedelta(days=2).total_seconds())
    assert {e.id for e in outbox.failed(network.user_id)} == {response.id}
    assert any(r.envelope_id == alert.id and r.outcome is Outcome.EXPIRED
               for r in outbox.history)


def test_answers_verify_with_the_certificate_info_publishes(web: Harness) -> None:
    _, _, body = http(web, "GET", "/gbhil/info")
    published = x509.load_pem_x509_certificate(json.loads(body)["dcc"]["certificate"].encode())
    assert published == web.users.dcc.certificate
    _, _, ack = http(web, "POST", WebService.NON_DEVICE.path,
                     web.sign(web.template("8.2_READ_INVENTORY_REQUEST_DUIS.XML")))
    checked = verify(ack, certificate_resolver([published]), at=web.rig.clock.now())
    assert checked.serial == published.serial_number


# --- Durability before the I99 (group commit) ----------------------------------------------------


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read through a second connection: only what is committed is visible."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_an_i99_comes_after_one_commit_holding_counter_and_pending_rows(tmp_path: Path) -> None:
    db = tmp_path / "dcc.sqlite"
    h = Harness(config=EmulatorConfig(duis_port=0, smki_port=None, store_path=str(db)),
                capture_sink=False)
    try:
        statements: list[str] = []
        h.emu.processor._pending_store._conn.set_trace_callback(statements.append)
        due = h.rig.clock.now() + dt.timedelta(hours=1)  # held by the DCC: the row stays
        xml = edit(h.template("ECS17b_4.1.1_DSP_FUTURE_DATED_REQUEST_DUIS.XML"),
                   body="<sr:ReadInstantaneousImportRegisters><sr:ExecutionDateTime>"
                   f"{format_datetime(due)}</sr:ExecutionDateTime>"
                   "</sr:ReadInstantaneousImportRegisters>")
        signed = h.sign(xml)
        status, _, ack = http(h, "POST", WebService.SEND_COMMAND.path, signed)
        assert status == 200
        header = h.checked(ack).header
        assert header.response_code == "I99"
        rid = header.request_id
        assert rid is not None
        assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == [
            "BEGIN IMMEDIATE", "COMMIT"]
        assert _rows(db, "SELECT request_id FROM dcc_pending") == [(str(rid),)]
        assert _rows(db, "SELECT originator, counter FROM dcc_last_counter") == [
            (rid.originator, rid.counter)]
    finally:
        h.close()


def test_group_commit_shares_a_commit_and_answers_only_after_it(tmp_path: Path) -> None:
    db = tmp_path / "queue.sqlite"
    conn = open_store(db, "CREATE TABLE t (k TEXT PRIMARY KEY);")
    commits: list[str] = []
    conn.set_trace_callback(lambda s: commits.append(s) if s == "COMMIT" else None)
    writes = GroupCommit(conn, threading.Lock(), background=True)

    async def request(key: str) -> list[tuple[Any, ...]]:
        writes.write("INSERT INTO t VALUES (?)", (key,))
        await writes.durable()
        return _rows(db, f"SELECT k FROM t WHERE k = '{key}'")

    async def scenario() -> None:
        seen = await asyncio.gather(request("a"), request("b"), request("c"))
        assert seen == [[("a",)], [("b",)], [("c",)]]  # committed before durable() returned
        assert len(commits) <= 2  # the first alone or all three together, not one each
        writes.write("INSERT INTO t VALUES (?)", ("d",))  # goes to the worker thread...
        await asyncio.sleep(0)
        writes.write("DELETE FROM t WHERE k = ?", ("d",))
        writes.flush()  # ...and a flush lands after it, not before
        assert _rows(db, "SELECT k FROM t ORDER BY k") == [("a",), ("b",), ("c",)]
        writes.write("INSERT INTO t VALUES (?)", ("a",))  # violates the key
        with pytest.raises(sqlite3.IntegrityError):
            await writes.durable()
        assert _rows(db, "SELECT count(*) FROM t") == [(3,)]  # rolled back, nothing half

    try:
        asyncio.run(scenario())
    finally:
        writes.close()
        conn.close()
