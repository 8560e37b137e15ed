"""6.15, 6.17, 6.21, 6.23, 6.24: security credentials (CS02a-g), all ASN.1 (gbcs-facts 3.3).

CS02b/CS02g replace trust anchors: the authorising party's control block (replacement mode,
its trust-anchor cell, its sequence number = the command's Originator Counter, new floor
sequence numbers), one replacement per certificate the request carries, the certification
path, and the execution date-time. Field presence follows the RTDS commands: the
time-based CPV flag only when the checks are disapplied; a Transitional-CoS cancellation
carries no sequence-number changes.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from gbhil.dcc.transforms.base import (
    BuildContext,
    BuildError,
    When,
    asn1_command,
    asn1_time,
    boolean,
    builder,
    find,
    find_all,
    has,
    integer,
    opt_integer,
    text,
)

#: DUIS RemotePartyRole -> GBCS remote party role (gbhil.gbcs.asn1_schemas.REMOTE_PARTY_ROLES).
ROLE = {
    "Root": 0, "Recovery": 1, "Supplier": 2, "NetworkOperator": 3, "ACB": 4, "TransCoS": 5,
    "LoadController": 8,
}
SUPPLIER = ROLE["Supplier"]
TRANSITIONAL_COS = ROLE["TransCoS"]
ACB = ROLE["ACB"]
#: credentialsReplacementMode per use case label (gbhil.gbcs.asn1_schemas.REPLACEMENT_MODES).
REPLACEMENT_MODE = {
    "CS02bSupplierBySupplier": 2,
    "CS02bSupplierBySupplierHandover": 2,
    "CS02bNOByNO": 3,
    "CS02bNOByNOHandover": 3,
    "CS02bSupplierByTransCoS": 7,
    "CS02gLoadControllerBySupplier": 11,
}
CPV_DISAPPLY = 1
SEQ_USAGE_TOP_UP = 0
CELL_USAGE_TOP_UP = 1
DIGITAL_SIGNATURE = ["digitalSignature"]
KEY_AGREEMENT = ["keyAgreement"]
CREDENTIAL_TYPE = {"Digital Signature": DIGITAL_SIGNATURE, "Key Agreement": KEY_AGREEMENT}


def der(raw: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BuildError(f"{what} is not base64 DER") from None


def _replacements(
    certs_parent: str, ctx: BuildContext, role: int
) -> list[dict[str, Any]]:
    """One replacement per certificate: DS, KA, and the prepayment top-up KA cell."""
    out: list[dict[str, Any]] = []
    for element, usage, cell in (
        ("DigitalSigningCertificate", DIGITAL_SIGNATURE, None),
        ("KeyAgreementCertificate", KEY_AGREEMENT, None),
        ("KeyAgreementTopUpCertificate", KEY_AGREEMENT, CELL_USAGE_TOP_UP),
    ):
        cert = find(ctx.body, f"{certs_parent}/{element}")
        if cert is None:
            continue
        target: dict[str, Any] = {"remotePartyRole": role, "keyUsage": usage}
        if cell is not None:
            target["cellUsage"] = cell
        out.append(
            {"replacingCertificate": der(cert.text or "", element), "targetTrustAnchorCell": target}
        )
    if not out:
        raise BuildError("the request carries no replacement certificate")
    return out


def _path(ctx: BuildContext) -> list[bytes]:
    return [
        der(c.text or "", "Certificate")
        for c in find_all(ctx.body, "CertificationPathCertificates/Certificate")
    ]


def _specialist(top_up_floor: int | None) -> list[dict[str, int]] | None:
    if top_up_floor is None:
        return None
    return [{"seqNumberUsage": SEQ_USAGE_TOP_UP, "seqNumber": top_up_floor}]


def _control(ctx: BuildContext, authoriser: int) -> dict[str, Any]:
    control: dict[str, Any] = {
        "credentialsReplacementMode": REPLACEMENT_MODE[ctx.use_case],
        "authorisingRemotePartyTaCellIdentifier": {
            "remotePartyRole": authoriser, "keyUsage": DIGITAL_SIGNATURE,
        },
        "authorisingRemotePartySeqNumber": ctx.counter,
    }
    if has(ctx.body, "ApplyTimeBasedCPVChecks") and not boolean(
        ctx.body, "ApplyTimeBasedCPVChecks"
    ):
        control["applyTimeBasedCpvChecks"] = CPV_DISAPPLY
    return control


@builder(
    "CS02bSupplierBySupplier", "CS02bNOByNO", "CS02gLoadControllerBySupplier",
    "CS02bSupplierBySupplierHandover", "CS02bNOByNOHandover",
)
def update_credentials_krp(ctx: BuildContext) -> bytes:
    """6.15.1 (the User replaces its own or its load controller's anchors) and 6.21."""
    role_text = text(ctx.body, "RemotePartyRole")
    if role_text not in ROLE:
        raise BuildError(f"RemotePartyRole {role_text!r} cannot be replaced here")
    role = ROLE[role_text]
    floor = integer(ctx.body, "RemotePartyFloorSeqNumber")
    top_up = opt_integer(ctx.body, "RemotePartyPrepaymentTopUpFloorSeqNumber")
    certs = (
        "ReplacementCertificates/SupplierOrNetworkOperatorCertificates"
        if has(ctx.body, "ReplacementCertificates/SupplierOrNetworkOperatorCertificates")
        else "ReplacementCertificates"
    )
    if ctx.use_case == "CS02gLoadControllerBySupplier":
        control = _control(ctx, SUPPLIER)
        change: dict[str, Any] = {"remotePartyRole": role, "floorSeqNumber": floor}
        if top_up is not None:
            change["specialistFloorSeqNumbers"] = _specialist(top_up)
        control["otherRemotePartySeqNumberChanges"] = [change]
    else:
        control = _control(ctx, role)
        control["newRemotePartyFloorSeqNumber"] = floor
        control["newRemotePartySpecialistFloorSeqNumbers"] = _specialist(top_up)
    return asn1_command(
        ctx.message_code,
        {
            "authorisingRemotePartyControl": control,
            "replacements": _replacements(certs, ctx, role),
            "certificationPathCertificates": _path(ctx),
            "executionDateTime": asn1_time(ctx.execution),
        },
    )


@builder("CS02bSupplierByTransCoS")
def update_credentials_cos(ctx: BuildContext) -> bytes:
    """6.23: the Transitional CoS party installs the gaining supplier's anchors."""
    control = _control(ctx, TRANSITIONAL_COS)
    if ctx.execution.when is not When.CANCEL:
        change: dict[str, Any] = {
            "remotePartyRole": SUPPLIER,
            "floorSeqNumber": integer(ctx.body, "SupplierFloorSeqNumber"),
        }
        top_up = opt_integer(ctx.body, "SupplierPrepaymentTopUpFloorSeqNumber")
        if top_up is not None:
            change["specialistFloorSeqNumbers"] = _specialist(top_up)
        control["otherRemotePartySeqNumberChanges"] = [change]
    return asn1_command(
        ctx.message_code,
        {
            "authorisingRemotePartyControl": control,
            "replacements": _replacements("SupplierReplacementCertificates", ctx, SUPPLIER),
            "certificationPathCertificates": _path(ctx),
            "executionDateTime": asn1_time(ctx.execution),
        },
    )


@builder("CS02d")
def update_device_certificate(ctx: BuildContext) -> bytes:
    return asn1_command(
        ctx.message_code, {"certificate": der(text(ctx.body, "DeviceCertificate"), "certificate")}
    )


@builder("CS02c", "CS02e")
def device_credentials(ctx: BuildContext) -> bytes:
    """6.17 issue / 6.24.2 provide the device's own certificate of one key usage."""
    kind = text(ctx.body, "CredentialType")
    if kind not in CREDENTIAL_TYPE:
        raise BuildError(f"CredentialType {kind!r} is unknown")
    return asn1_command(ctx.message_code, {"keyUsage": CREDENTIAL_TYPE[kind]})


@builder("CS02fMAC", "CS02aMAC")
def provide_credential_details(ctx: BuildContext) -> bytes:
    """6.24.1: the ACB asks which anchors the device holds for the named roles."""
    roles = []
    for element in find_all(ctx.body, "RemotePartyRole"):
        name = (element.text or "").strip()
        if name not in ROLE:
            raise BuildError(f"RemotePartyRole {name!r} is unknown")
        roles.append(ROLE[name])
    return asn1_command(
        ctx.message_code,
        {
            "authorisingRemotePartyTaCellIdentifier": {
                "remotePartyRole": ACB, "keyUsage": KEY_AGREEMENT,
            },
            "remotePartyRolesCredentialsRequired": roles,
        },
    )
