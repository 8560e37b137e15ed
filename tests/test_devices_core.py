"""The GBCS receive pipeline: error paths leave the device unchanged; good commands answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gbhil.devices import Refusal
from gbhil.devices.coverage import RTDS_PARTIES, SteppedClock
from gbhil.devices.ppmid import Ppmid
from gbhil.devices.trust import CellUsage, DeviceKeys, Role
from gbhil.gbcs.asn1_schemas import Direction, json_to_asn1
from gbhil.gbcs.frame import Cra, GeneralSigning, OtherInformation, decode_frame
from gbhil.gbcs.message import decode_message, encode_payload
from gbhil.gbcs.security import Check, SecurityContext, protect, verify_mac, verify_signature
from gbhil.smki import generate_pki

PPMID = bytes.fromhex("00DB1234567890A4")
OTHER = bytes.fromhex("00DB1234567890A0")
SUPPLIER = RTDS_PARTIES[Role.SUPPLIER]
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pki():  # type: ignore[no-untyped-def]
    orgs = {"supplier": SUPPLIER.hex(), "acb": RTDS_PARTIES[Role.ACB].hex(),
            "network_operator": RTDS_PARTIES[Role.NETWORK_OPERATOR].hex()}  # fmt: skip
    return generate_pki(None, organisations=orgs, devices={PPMID: "PPMID", OTHER: "ESME"}, seed=3)


@pytest.fixture()
def rig(pki):  # type: ignore[no-untyped-def]
    clock = SteppedClock(START)
    parties = {
        r: e
        for r, e in RTDS_PARTIES.items()
        if r in (Role.SUPPLIER, Role.ACB, Role.NETWORK_OPERATOR)
    }
    keys = DeviceKeys.from_keystore(PPMID, pki.keystore, parties)
    ctx = SecurityContext(pki.keystore, RTDS_PARTIES[Role.ACB])
    return Ppmid(PPMID, keys, clock), ctx, clock


def _join(
    ctx: SecurityContext, counter: int, entity: bytes = OTHER, target: bytes = PPMID
) -> bytes:
    body = json_to_asn1(
        {"joinMethodAndRole": 1, "entityId": entity, "deviceType": 1}, 0x00AB, Direction.COMMAND
    )
    gs = GeneralSigning(
        Cra.COMMAND, counter, SUPPLIER, target, OtherInformation(0x00AB), encode_payload(body)
    )
    return protect(ctx, gs, signed=True, maced=True).encode()


def test_join_then_read_back(rig) -> None:  # type: ignore[no-untyped-def]
    dev, ctx, _ = rig
    reply = dev.receive(_join(ctx, 100))
    assert reply.refused is None and reply.response is not None
    rsp = decode_message(reply.response)
    assert rsp.frame.gs.cra is Cra.RESPONSE and rsp.frame.gs.originator_counter == 100
    assert verify_signature(ctx, rsp.frame.gs) is Check.VERIFIED  # critical -> signed response
    assert dev.join_log.entries == {OTHER: 1}  # type: ignore[attr-defined]
    gs = GeneralSigning(
        Cra.COMMAND, 101, SUPPLIER, PPMID, OtherInformation(0x0013), bytes.fromhex("0500")
    )
    reply = dev.receive(protect(ctx, gs, signed=False, maced=True).encode())
    rsp = decode_frame(reply.response)  # type: ignore[arg-type]
    assert verify_mac(ctx, rsp) is Check.VERIFIED


def _state(dev: Ppmid) -> tuple[object, ...]:
    log = getattr(dev, "join_log", None)
    cells = {k: (c.eui, c.sequence) for k, c in dev.keys.cells.items()}
    return dict(dev.last_counter), dict(log.entries if log else {}), cells, len(dev.pending())


@pytest.mark.parametrize(
    "mutate, refusal",
    [
        ("replay", Refusal.REPLAY),
        ("bad_mac", Refusal.BAD_MAC),
        ("wrong_target", Refusal.WRONG_TARGET),
        ("unsupported", Refusal.UNSUPPORTED),
        ("unsigned_critical", Refusal.NOT_SIGNED),
        ("garbled", Refusal.MALFORMED),
        ("not_command", Refusal.NOT_A_COMMAND),
    ],
)
def test_error_paths_discard_and_change_nothing(rig, mutate: str, refusal: Refusal) -> None:  # type: ignore[no-untyped-def]
    dev, ctx, _ = rig
    assert dev.receive(_join(ctx, 100)).refused is None
    before = _state(dev)
    if mutate == "replay":
        raw = _join(ctx, 100, entity=bytes(8))
    elif mutate == "bad_mac":
        b = bytearray(_join(ctx, 200, entity=bytes(8)))
        b[-1] ^= 1
        raw = bytes(b)
    elif mutate == "wrong_target":
        raw = _join(ctx, 200, entity=bytes(8), target=OTHER)
    elif mutate == "unsupported":
        gs = GeneralSigning(
            Cra.COMMAND, 200, SUPPLIER, PPMID, OtherInformation(0x0059), b"\x05\x00"
        )
        raw = protect(ctx, gs, signed=False, maced=True).encode()
    elif mutate == "unsigned_critical":
        msg = decode_frame(_join(ctx, 200, entity=bytes(8)))
        raw = protect(ctx, replace(msg.gs, signature=b""), signed=False, maced=True).encode()
    elif mutate == "garbled":
        raw = _join(ctx, 200)[:-30]
    else:
        gs = GeneralSigning(
            Cra.RESPONSE, 200, SUPPLIER, PPMID, OtherInformation(0x00AB), b"\x05\x00"
        )
        raw = protect(ctx, gs, signed=False, maced=True).encode()
    reply = dev.receive(raw)
    assert reply.refused is refusal
    assert reply.response is None and reply.alerts == []
    assert _state(dev) == before
    assert dev.events[-1].kind == "refused"


def _p384_certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "02")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def test_invalid_trust_anchor_update_changes_nothing(rig, pki) -> None:  # type: ignore[no-untyped-def]
    dev, ctx, _ = rig
    before = _state(dev)
    good = pki.keystore.certificate(SUPPLIER, "ds")
    body = {
        "authorisingRemotePartyControl": {
            "credentialsReplacementMode": 2,
            "authorisingRemotePartyTaCellIdentifier": {
                "remotePartyRole": 2,
                "keyUsage": ["digitalSignature"],
            },
            "authorisingRemotePartySeqNumber": 300,
            "newRemotePartyFloorSeqNumber": 0,
        },
        "replacements": [
            {"replacingCertificate": good.public_bytes(Encoding.DER),
             "targetTrustAnchorCell": {"remotePartyRole": 2, "keyUsage": ["digitalSignature"]}},
            {"replacingCertificate": _p384_certificate(),  # GB SMKI allows only P-256
             "targetTrustAnchorCell": {"remotePartyRole": 2, "keyUsage": ["keyAgreement"]}},
        ],
        "certificationPathCertificates": [],
    }  # fmt: skip
    payload = json_to_asn1(body, 0x0102, Direction.COMMAND)
    gs = GeneralSigning(
        Cra.COMMAND, 300, SUPPLIER, PPMID, OtherInformation(0x0102), encode_payload(payload)
    )
    reply = dev.receive(protect(ctx, gs, signed=True, maced=True).encode())
    assert reply.response is not None
    outcome = decode_message(reply.response)
    assert (
        b"\x0a\x01\x7f" in outcome.frame.gs.content or b"\x02\x01\x7f" in outcome.frame.gs.content
    )
    after = _state(dev)
    assert after[2] == before[2]  # no cell replaced: all or nothing
    assert dev.keys.cell(Role.SUPPLIER, CellUsage.DS).eui == SUPPLIER  # type: ignore[union-attr]


def test_future_dated_activation_raises_8f66_when_due(rig) -> None:  # type: ignore[no-untyped-def]
    dev, ctx, clock = rig
    from gbhil.devices import firmware

    digest = firmware.slots(dev).stage(b"new image", b"\x02\x00\x00\x00")
    at = START + timedelta(days=3)
    body = json_to_asn1(
        {"manufacturerImageHash": digest, "originatorCounter": 500, "executionDateTime": at},
        0x0012,
        Direction.COMMAND,
    )
    gs = GeneralSigning(
        Cra.COMMAND, 500, SUPPLIER, PPMID, OtherInformation(0x0012), encode_payload(body)
    )
    reply = dev.receive(protect(ctx, gs, signed=True, maced=True).encode())
    assert reply.response is not None and dev.next_due() == at
    clock.set(at - timedelta(seconds=1))
    assert dev.run_due() == []
    clock.set(at)
    alerts = dev.run_due()
    assert len(alerts) == 1
    alert = decode_message(alerts[0])
    assert alert.frame.gs.message_code == 0x00CA and alert.frame.gs.cra is Cra.ALERT
    assert verify_signature(ctx, alert.frame.gs) is Check.VERIFIED
    assert firmware.slots(dev).running_version == b"\x02\x00\x00\x00"
