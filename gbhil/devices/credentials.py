"""CS02 security-credential use cases: read, replace and issue trust anchors and device certs.

The device's trust anchor cells (gbhil.devices.trust) are what these commands
read and replace, so a CS02b that swaps the supplier's keys really changes
which commands the device accepts afterwards.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ObjectIdentifier

from gbhil.devices.core import Alert, Command, Deferred, Device, Outcome
from gbhil.devices.trust import AnchorCell, CellUsage, Role
from gbhil.gbcs.asn1 import asn1_to_json
from gbhil.gbcs.asn1_schemas import Direction, json_to_asn1
from gbhil.smki import certificate_eui
from gbhil.smki.pki import encode_hardware_module_name, key_identifier
from gbhil.smki.profile import OID_HARDWARE_MODULE_NAME

CS02A = 0x0008
CS02F = 0x011B
CS02C = 0x000A
CS02D = 0x000B
CS02E = 0x000C
CS02B_CODES = frozenset(range(0x0100, 0x010A))
CS02G_CODES = frozenset({0x0125, 0x0126})
CS02B_ALERT = 0x00CB
CS02G_ALERT = 0x0124
ALERT_FUTURE_SUCCESS = 0x8F66
ALERT_FUTURE_FAILURE = 0x8F67
#: GeneralizedTime GBCS uses to cancel a pending future-dated command.
CANCEL_TIME = "9999-12-31T23:59:59Z"
STATUS_SUCCESS = 0
STATUS_OTHER = 127
#: CS02d response codes (gbcs-facts 3.3; names in asn1_schemas).
CS02D_SUCCESS = 0
CS02D_INVALID_KEY_USAGE = 3
CS02D_NOT_FOR_DEVICE = 2
#: CS02c response code when no certification request can be produced.
CS02C_CR_FAILED = 3
ROOT_SUBJECT_ID = bytes(8)
#: Named fault: the device's key generator fails (CS02c answers "CR production failed").
FAULT_KEY_GENERATION = "key-generation"


def _usage_of(cell: dict[str, Any]) -> CellUsage:
    usages = cell.get("keyUsage", [])
    if "keyAgreement" in usages:
        return CellUsage.PREPAYMENT_KA if cell.get("cellUsage") == 1 else CellUsage.KA
    return CellUsage.DS


def _cell_json(role: Role, usage: CellUsage) -> dict[str, Any]:
    if role is Role.ROOT:
        return {"remotePartyRole": int(role), "keyUsage": ["keyCertSign"]}
    out: dict[str, Any] = {
        "remotePartyRole": int(role),
        "keyUsage": ["digitalSignature" if usage is CellUsage.DS else "keyAgreement"],
    }
    if usage is CellUsage.PREPAYMENT_KA:
        out["cellUsage"] = 1
    return out


def _hex_eui(value: str) -> bytes:
    return bytes.fromhex(value.replace("-", ""))


def handle_cs02a(device: Device, cmd: Command) -> Outcome:
    """Provide Security Credentials Details (CS02a/CS02f): what each requested cell holds."""
    req = asn1_to_json(cmd.payload, cmd.message_code, 1)  # type: ignore[arg-type]
    details: list[dict[str, Any]] = []
    for role_no in req.get("remotePartyRolesCredentialsRequired", []):
        try:
            role = Role(role_no)
        except ValueError:
            details.append({"remotePartyRole": role_no, "statusCode": STATUS_OTHER})
            continue
        cells = [c for (r, _), c in device.keys.cells.items() if r is role]
        if not cells:
            details.append({"remotePartyRole": int(role), "statusCode": STATUS_OTHER})
            continue
        details.append(
            {
                "remotePartyRole": int(role),
                "statusCode": STATUS_SUCCESS,
                "currentSeqNumber": max(c.sequence for c in cells),
                "trustAnchorCellDetails": [
                    {
                        **{
                            k: v
                            for k, v in _cell_json(c.role, c.usage).items()
                            if k != "remotePartyRole"
                        },
                        "subjectUniqueId": c.eui,
                        "subjectKeyIdentifier": key_identifier(c.public_key),
                    }
                    for c in sorted(cells, key=lambda c: c.usage)
                ],
            }
        )
    return Outcome(
        json_to_asn1({"remotePartyDetails": details}, cmd.message_code, Direction.RESPONSE)
    )


def handle_cs02b(device: Device, cmd: Command) -> Outcome:
    """Update Security Credentials (CS02b, CS02g): replace cells now, later, or cancel."""
    req = asn1_to_json(cmd.payload, cmd.message_code, 1)  # type: ignore[arg-type]
    when = req.get("executionDateTime")
    accepted = json_to_asn1({"commandAccepted": True}, cmd.message_code, Direction.RESPONSE)
    if when == CANCEL_TIME:
        device.cancel(lambda d: d.message_code in CS02B_CODES | CS02G_CODES)
        return Outcome(accepted)
    at = datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None
    if at is not None and at > cmd.received_at:
        alert_code = CS02G_ALERT if cmd.message_code in CS02G_CODES else CS02B_ALERT

        def run(now: datetime, req: dict[str, Any] = req) -> list[Alert]:
            outcome, ok = _apply_replacements(device, req)
            body = {
                "alertCode": ALERT_FUTURE_SUCCESS if ok else ALERT_FUTURE_FAILURE,
                "executionDateTime": now.astimezone(UTC),
                "executionOutcome": outcome,
            }
            return [
                Alert(alert_code, json_to_asn1(body, alert_code, Direction.ALERT), cmd.originator)
            ]

        device.cancel(lambda d: d.message_code in CS02B_CODES | CS02G_CODES)
        return Outcome(
            accepted,
            deferred=[Deferred(at, run, cmd.message_code, cmd.counter, cmd.originator, "CS02b")],
        )
    outcome, _ = _apply_replacements(device, req)
    body = {"commandAccepted": True, "executionOutcome": outcome}
    return Outcome(json_to_asn1(body, cmd.message_code, Direction.RESPONSE))


def _apply_replacements(device: Device, req: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Validate every replacement first, then install them all (or none)."""
    ctl = req["authorisingRemotePartyControl"]
    planned: list[tuple[dict[str, Any], AnchorCell | None, AnchorCell | None, int]] = []
    for rep in req.get("replacements", []):
        target = rep["targetTrustAnchorCell"]
        try:
            role = Role(target["remotePartyRole"])
        except ValueError:
            planned.append((target, None, None, STATUS_OTHER))
            continue
        usage = _usage_of(target)
        existing = device.keys.cell(role, usage)
        new, status = _cell_from_certificate(rep["replacingCertificate"], role, usage)
        planned.append((target, existing, new, status))
    ok = all(status == STATUS_SUCCESS for *_, status in planned)
    seq = ctl.get("authorisingRemotePartySeqNumber", 0)
    outcomes = []
    for target, existing, new, status in planned:
        if ok and new is not None:
            device.keys.set_cell(replace(new, sequence=seq))
        after = new if ok and new is not None else existing
        outcomes.append(
            {
                "affectedTrustAnchorCell": target,
                "statusCode": status,
                "existingSubjectUniqueId": existing.eui if existing else ROOT_SUBJECT_ID,
                "existingSubjectKeyId": key_identifier(existing.public_key)
                if existing
                else bytes(8),
                "replacingSubjectUniqueId": after.eui if after else ROOT_SUBJECT_ID,
                "replacingSubjectKeyId": key_identifier(after.public_key) if after else bytes(8),
            }
        )
    changes = []
    auth_role = ctl["authorisingRemotePartyTaCellIdentifier"]["remotePartyRole"]
    if "newRemotePartyFloorSeqNumber" in ctl:
        own: dict[str, Any] = {
            "remotePartyRole": auth_role,
            "floorSeqNumber": ctl["newRemotePartyFloorSeqNumber"],
        }
        if "newRemotePartySpecialistFloorSeqNumbers" in ctl:
            own["specialistFloorSeqNumbers"] = ctl["newRemotePartySpecialistFloorSeqNumbers"]
        changes.append(own)
    changes.extend(ctl.get("otherRemotePartySeqNumberChanges", []))
    outcome = {
        "authorisingRemotePartySeqNumber": seq,
        "credentialsReplacementMode": ctl["credentialsReplacementMode"],
        "remotePartySeqNumberChanges": changes,
        "replacementOutcomes": outcomes,
    }
    return outcome, ok


def _cell_from_certificate(
    cert_json: dict[str, Any], role: Role, usage: CellUsage
) -> tuple[AnchorCell | None, int]:
    try:
        cert = x509.load_der_x509_certificate(bytes.fromhex(cert_json["der"]))
        key = cert.public_key()
    except (KeyError, ValueError):
        return None, STATUS_OTHER
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return None, STATUS_OTHER
    eui = ROOT_SUBJECT_ID if role is Role.ROOT else certificate_eui(cert)
    if eui is None:
        return None, STATUS_OTHER
    return AnchorCell(role, usage, eui, key), STATUS_SUCCESS


def handle_cs02c(device: Device, cmd: Command) -> Outcome:
    """Issue Security Credentials: make a new key pair and return its PKCS#10 request.

    The new key stays pending until CS02d installs a certificate for it.
    """
    req = asn1_to_json(cmd.payload, cmd.message_code, 1)  # type: ignore[arg-type]
    usages = req.get("keyUsage", [])
    if usages not in (["digitalSignature"], ["keyAgreement"]):
        return Outcome(json_to_asn1({"responseCode": CS02C_CR_FAILED}, CS02C, Direction.RESPONSE))
    usage = CellUsage.DS if usages == ["digitalSignature"] else CellUsage.KA
    if FAULT_KEY_GENERATION in device.faults:
        return Outcome(json_to_asn1({"responseCode": CS02C_CR_FAILED}, CS02C, Direction.RESPONSE))
    key = ec.generate_private_key(ec.SECP256R1())
    ds = usage is CellUsage.DS
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.KeyUsage(ds, False, False, False, not ds, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.OtherName(
                        ObjectIdentifier(OID_HARDWARE_MODULE_NAME),
                        encode_hardware_module_name(device.eui),
                    )
                ]
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pending = _pending_keys(device)
    pending[usage] = key
    body = {"certificationRequest": csr.public_bytes(Encoding.DER)}
    return Outcome(json_to_asn1(body, CS02C, Direction.RESPONSE))


def _pending_keys(device: Device) -> dict[CellUsage, ec.EllipticCurvePrivateKey]:
    pending = getattr(device, "pending_keys", None)
    if pending is None:
        pending = {}
        device.pending_keys = pending  # type: ignore[attr-defined]
    return pending


def handle_cs02d(device: Device, cmd: Command) -> Outcome:
    """Update Device Certificate: accept a certificate for the device's current or pending key.

    A certificate for a key made by CS02c switches the device to that key.
    """
    req = asn1_to_json(cmd.payload, cmd.message_code, 1)  # type: ignore[arg-type]
    try:
        cert = x509.load_der_x509_certificate(bytes.fromhex(req["certificate"]["der"]))
        pub = cert.public_key()
    except (KeyError, ValueError, TypeError):
        return Outcome(
            json_to_asn1({"responseCode": CS02D_INVALID_KEY_USAGE}, CS02D, Direction.RESPONSE)
        )
    if certificate_eui(cert) not in (None, device.eui):
        code = CS02D_NOT_FOR_DEVICE
    elif not isinstance(pub, ec.EllipticCurvePublicKey):
        code = CS02D_INVALID_KEY_USAGE
    else:
        code = CS02D_INVALID_KEY_USAGE
        numbers = pub.public_numbers()
        own = {CellUsage.DS: device.keys.ds, CellUsage.KA: device.keys.ka}
        for usage, key in [*own.items(), *_pending_keys(device).items()]:
            if key.public_key().public_numbers() == numbers and _usage_matches(cert, usage):
                code = CS02D_SUCCESS
                if usage is CellUsage.DS:
                    device.keys.ds = key
                else:
                    device.keys.ka = key
                _pending_keys(device).pop(usage, None)
                break
    return Outcome(json_to_asn1({"responseCode": code}, CS02D, Direction.RESPONSE))


def _usage_matches(cert: x509.Certificate, usage: CellUsage) -> bool:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ku.digital_signature if usage is CellUsage.DS else ku.key_agreement


def inject_recorded_failure(device: Device, message_code: int, recorded: dict[str, Any]) -> bool:
    """Reproduce the precondition behind a recorded CS02 error response.

    CS02c "CR production failed" is a key-generation fault; a CS02a/f role
    reported with a non-success status is a trust anchor cell the device lacks.
    """
    if message_code == CS02C and recorded.get("responseCode") == CS02C_CR_FAILED:
        device.faults.add(FAULT_KEY_GENERATION)
        return True
    if message_code in (CS02A, CS02F):
        failed = {
            d["remotePartyRole"]
            for d in recorded.get("remotePartyDetails", [])
            if d.get("statusCode") != STATUS_SUCCESS
        }
        for key in [k for k in device.keys.cells if k[0] in failed]:
            del device.keys.cells[key]
        return bool(failed)
    return False


def handlers() -> dict[int, Any]:
    out: dict[int, Any] = {
        CS02A: handle_cs02a,
        CS02F: handle_cs02a,
        CS02C: handle_cs02c,
        CS02D: handle_cs02d,
    }
    out.update(dict.fromkeys(CS02B_CODES | CS02G_CODES, handle_cs02b))
    return out
