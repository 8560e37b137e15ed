"""Named fields for the GBCS ASN.1 payloads, keyed by message code and direction.

:mod:`gbhil.gbcs.asn1` gives a typed but anonymous DER tree. This module holds
one declarative schema per (message code, command/response/alert) in
:data:`ASN1_SCHEMAS` (gbcs-facts 3.3, field names as in GBCS / TS asn1.ts,
shapes checked on RTDS 4.5.0) and walks it in both directions:

* :func:`asn1_to_json` turns a tree into named, JSON-able fields;
* :func:`json_to_asn1` turns those fields back into a tree, so the builders
  the simulator uses (``build_*``) are thin wrappers over the same catalogue
  and ``json_to_asn1(asn1_to_json(x))`` re-encodes RTDS payloads byte for byte.

Conventions of the JSON view: coded integers carry a sibling ``<name>Text``;
EUI-64 values are ``00-DB-12-34-56-78-90-A0``; other octet strings upper-case
hex; GeneralizedTime as ISO 8601 (``2030-01-15T09:00:00Z``); alert codes as
hex text (``"8F66"``); certificates as :func:`gbhil.gbcs.asn1.certificate_summary`;
absent OPTIONAL fields are omitted; a NULL-only payload is ``{}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gbhil.gbcs.alerts import alert_name
from gbhil.gbcs.asn1 import (
    CLASS_CONTEXT,
    CONSTRUCTED,
    TAG_BIT_STRING,
    TAG_ENUMERATED,
    TAG_GENERALIZED_TIME,
    TAG_INTEGER,
    TAG_NULL,
    TAG_OCTET_STRING,
    Asn1Node,
    BitString,
    Enumerated,
    GeneralizedTime,
    Integer,
    Null,
    OctetString,
    Sequence,
    TaggedConstructed,
    TaggedPrimitive,
    certificate_summary,
    decode_asn1,
    is_certificate,
    json_int,
    node_to_json,
)
from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.frame import Cra

#: Schema direction = the CRA flag of the General Signing header (1/2/3).
Direction = Cra


# ---------------------------------------------------------------------------
# Code tables (GBCS ASN.1 module; names after TS asn1.ts; RTDS additions noted)

REMOTE_PARTY_ROLES: dict[int, str] = {
    0: "Root",
    1: "Recovery",
    2: "Supplier",
    3: "Network Operator",
    4: "Access Control Broker",
    5: "Transitional Change of Supplier",
    6: "WAN Provider",
    7: "Issuing Authority",
    8: "Load Controller",  # RTDS CS02g trust-anchor cells (not in TS)
    127: "Other",
}
KEY_USAGE_BITS: dict[int, str] = {
    0: "digitalSignature",
    4: "keyAgreement",
    5: "keyCertSign",
    6: "cRLSign",
}
CELL_USAGES: dict[int, str] = {0: "Management", 1: "Prepayment Top Up"}
SEQ_NUMBER_USAGES: dict[int, str] = {0: "Prepayment Top Up"}
STATUS_CODES: dict[int, str] = {
    0: "Success",
    5: "Bad Certificate",
    10: "No Trust Anchor",
    17: "Insufficient Memory",
    25: "Trust Anchor Not Found",
    30: "Resources Busy",
    127: "Other",
}
REPLACEMENT_MODES: dict[int, str] = {
    2: "Supplier by Supplier",
    3: "Network Operator by Network Operator",
    4: "ACB by ACB",
    5: "WAN Provider by WAN Provider",
    6: "TransCoS by TransCoS",
    7: "Supplier by TransCoS",
    8: "Any Except Abnormal Root by Recovery",
    9: "Any by Contingency",
    10: "Load Controller by Load Controller",  # RTDS CS02g 0x0125
    11: "Load Controller by Supplier",  # RTDS CS02g 0x0126
}
CPV_CHECKS: dict[int, str] = {0: "Apply", 1: "Disapply"}
DEVICE_TYPES: dict[int, str] = {
    0: "GSME",
    1: "ESME",
    2: "CHF",
    3: "GPF",
    4: "HCALCS",
    5: "PPMID",
    6: "Type 2",
}
JOIN_METHODS: dict[int, str] = {
    0: "Method A Initiator",
    1: "Method A Responder",
    2: "Method B",
    3: "Method C",
}
JOIN_RESPONSE_CODES: dict[int, str] = {
    0: "Success",
    1: "Invalid Message Code for Join Method and Role",
    2: "Invalid Join Method and Role",
    3: "Incompatible with Existing Entry",
    4: "Device Log Full",
    5: "Write Failure",
    6: "Key Agreement No Resources",
    7: "Key Agreement Unknown Issuer",
    8: "Key Agreement Unsupported Suite",
    9: "Key Agreement Bad Message",
    10: "Key Agreement Bad Key Confirm",
    11: "Invalid or Missing Certificate",
    12: "No Partner Link Key Received",
    13: "No CBKE Response",
}
GPF_RESTORE_JOIN_CODES: dict[int, str] = {k: v for k, v in JOIN_RESPONSE_CODES.items() if k <= 11}
UNJOIN_RESPONSE_CODES: dict[int, str] = {0: "Success", 1: "Not in Device Log", 2: "Other Failure"}
ISSUE_CREDENTIALS_CODES: dict[int, str] = {
    1: "Invalid Key Usage",
    2: "Key Pair Generation Failed",
    3: "CR Production Failed",
}
UPDATE_DEVICE_CERT_CODES: dict[int, str] = {
    0: "Success",
    1: "Invalid Certificate",
    2: "Wrong Device Identity",
    3: "Invalid Key Usage",
    4: "No Corresponding Key Pair Generated",
    5: "Wrong Public Key",
    6: "Certificate Storage Failed",
    7: "Private Key Change Failed",
}
PROVIDE_DEVICE_CERT_CODES: dict[int, str] = {
    1: "Invalid Key Usage",
    2: "No Certificate Held",
    3: "Certificate Retrieval Failure",
}
ACTIVATE_FIRMWARE_CODES: dict[int, str] = {
    0: "Success",
    1: "No Image Held",
    2: "Hash Mismatch",
    3: "Activation Failure",
}
READ_JOIN_DETAILS_CODES: dict[int, str] = {0: "Success", 1: "Read Failure"}
READ_FIRMWARE_CODES: dict[int, str] = {0: "Read Success", 1: "Read Failure"}
ACTIVATE_IMAGE_RESULTS: dict[int, str] = {0: "Success", 1: "Failure"}
FIRMWARE_TRANSFER_CODES: dict[int, str] = {
    0: "Success",
    1: "Image Discarded",
    2: "Hardware Version Mismatch",
    3: "File Transfer Failure",
}
DEVICE_TIME_STATUS: dict[int, str] = {0: "Reliable", 1: "Invalid", 2: "Unreliable"}

#: Alert codes carried inside ASN.1 alert payloads (gbcs-facts 3.3 / 3.4).
ALERT_FUTURE_DATED_SUCCESS = 0x8F66
ALERT_FUTURE_DATED_FAILURE = 0x8F67
ALERT_GPF_DEVICE_LOG_CHANGED = 0x8071
ALERT_FIRMWARE_TRANSFER_FAIL = 0x8F89
ALERT_FIRMWARE_TRANSFER_SUCCESS = 0x8F8A
ALERT_READ_FIRMWARE_VERSION = 0x8F8B

#: GeneralizedTime that cancels a future-dated CS02b/CS06 command.
CANCEL_EXECUTION_TIME = "99991231235959Z"


# ---------------------------------------------------------------------------
# Schema vocabulary: plain frozen data, interpreted by _to_json / _from_json.


@dataclass(frozen=True, slots=True)
class Int:
    """INTEGER (or ENUMERATED with ``enumerated=True``), optionally with a code table."""

    codes: Mapping[int, str] | None = None
    enumerated: bool = False


@dataclass(frozen=True, slots=True)
class Octets:
    """OCTET STRING shown as hex."""


@dataclass(frozen=True, slots=True)
class Eui:
    """OCTET STRING(8) entity / device identifier shown as ``00-DB-...``."""


@dataclass(frozen=True, slots=True)
class Time:
    """GeneralizedTime shown as ISO 8601."""


@dataclass(frozen=True, slots=True)
class NullFlag:
    """NULL shown as ``true`` (e.g. "command accepted")."""


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """X.509 KeyUsage BIT STRING shown as a list of bit names."""


@dataclass(frozen=True, slots=True)
class AlertCode:
    """INTEGER alert code (DER adds a leading 00 for 0x8xxx) shown as ``"8F66"``."""


@dataclass(frozen=True, slots=True)
class Cert:
    """X.509 certificate (or PKCS#10 request with ``request=True``), kept as DER."""

    request: bool = False


@dataclass(frozen=True, slots=True)
class Field:
    """Named component; ``tag`` = IMPLICIT context tag number when tagged."""

    name: str
    spec: Spec
    optional: bool = False
    tag: int | None = None


@dataclass(frozen=True, slots=True)
class Seq:
    """SEQUENCE of named components (missing optional ones are skipped)."""

    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class SeqOf:
    """SEQUENCE OF one element type, shown as a list."""

    item: Spec


@dataclass(frozen=True, slots=True)
class Choice:
    """Top-level CHOICE: the alternative is picked by the element's tag."""

    alternatives: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class Single:
    """Top-level payload that is one bare element, shown as ``{name: value}``."""

    field: Field


@dataclass(frozen=True, slots=True)
class NullPayload:
    """Top-level NULL (CS07/CS08 commands), shown as ``{}``."""


Spec = Int | Octets | Eui | Time | NullFlag | KeyUsage | AlertCode | Cert | Seq | SeqOf
Record = Seq | Choice | Single | NullPayload


@dataclass(frozen=True, slots=True)
class MessageSchema:
    """One catalogue row: the use case and the shape of its payload."""

    use_case: str
    title: str
    record: Record


# ---------------------------------------------------------------------------
# Shared structures

TA_CELL_IDENTIFIER = Seq(
    (
        Field("remotePartyRole", Int(REMOTE_PARTY_ROLES)),
        Field("keyUsage", KeyUsage()),
        Field("cellUsage", Int(CELL_USAGES), optional=True),
    )
)
SPECIALIST_SEQ_NUMBER = Seq(
    (
        Field("seqNumberUsage", Int(SEQ_NUMBER_USAGES)),
        Field("seqNumber", Int()),
    )
)
SEQ_NUMBER_CHANGE = Seq(
    (
        Field("remotePartyRole", Int(REMOTE_PARTY_ROLES)),
        Field("floorSeqNumber", Int()),
        Field("specialistFloorSeqNumbers", SeqOf(SPECIALIST_SEQ_NUMBER), optional=True),
    )
)
AUTHORISING_REMOTE_PARTY_CONTROL = Seq(
    (
        Field("credentialsReplacementMode", Int(REPLACEMENT_MODES)),
        Field("plaintextSymmetricKey", Octets(), optional=True, tag=0),
        Field("applyTimeBasedCpvChecks", Int(CPV_CHECKS), optional=True, tag=1),
        Field("authorisingRemotePartyTaCellIdentifier", TA_CELL_IDENTIFIER, optional=True, tag=2),
        Field("authorisingRemotePartySeqNumber", Int(), tag=3),
        Field("newRemotePartyFloorSeqNumber", Int(), optional=True, tag=4),
        Field(
            "newRemotePartySpecialistFloorSeqNumbers",
            SeqOf(SPECIALIST_SEQ_NUMBER),
            optional=True,
            tag=5,
        ),
        Field("otherRemotePartySeqNumberChanges", SeqOf(SEQ_NUMBER_CHANGE), optional=True, tag=6),
    )
)
REPLACEMENT_OUTCOME = Seq(
    (
        Field("affectedTrustAnchorCell", TA_CELL_IDENTIFIER),
        Field("statusCode", Int(STATUS_CODES, enumerated=True)),
        Field("existingSubjectUniqueId", Eui()),
        Field("existingSubjectKeyId", Octets()),
        Field("replacingSubjectUniqueId", Eui()),
        Field("replacingSubjectKeyId", Octets()),
    )
)
UPDATE_CREDENTIALS_OUTCOME = Seq(
    (
        Field("authorisingRemotePartySeqNumber", Int()),
        Field("credentialsReplacementMode", Int(REPLACEMENT_MODES)),
        Field("remotePartySeqNumberChanges", SeqOf(SEQ_NUMBER_CHANGE)),
        Field("replacementOutcomes", SeqOf(REPLACEMENT_OUTCOME)),
    )
)
DEVICE_LOG_ENTRY = Seq(
    (
        Field("deviceId", Eui()),
        Field("deviceType", Int(DEVICE_TYPES)),
    )
)
ACTIVATE_FIRMWARE_OUTCOME = Seq(
    (
        Field("responseCode", Int(ACTIVATE_FIRMWARE_CODES)),
        Field("firmwareVersion", Octets()),
    )
)

_KEY_USAGE_ONLY = Seq((Field("keyUsage", KeyUsage()),))

_CS02A_COMMAND = Seq(
    (
        Field("authorisingRemotePartyTaCellIdentifier", TA_CELL_IDENTIFIER),
        Field("remotePartyRolesCredentialsRequired", SeqOf(Int(REMOTE_PARTY_ROLES))),
    )
)
# RTDS: seq number and cell details are absent in entries whose status is not success.
_CS02A_RESPONSE = Single(
    Field(
        "remotePartyDetails",
        SeqOf(
            Seq(
                (
                    Field("remotePartyRole", Int(REMOTE_PARTY_ROLES)),
                    Field("statusCode", Int(STATUS_CODES, enumerated=True)),
                    Field("currentSeqNumber", Int(), optional=True),
                    Field(
                        "trustAnchorCellDetails",
                        SeqOf(
                            Seq(
                                (
                                    Field("keyUsage", KeyUsage()),
                                    Field("cellUsage", Int(CELL_USAGES), optional=True),
                                    Field("subjectUniqueId", Eui()),
                                    Field("subjectKeyIdentifier", Octets()),
                                )
                            )
                        ),
                        optional=True,
                    ),
                )
            )
        ),
    )
)
_CS02B_COMMAND = Seq(
    (
        Field("authorisingRemotePartyControl", AUTHORISING_REMOTE_PARTY_CONTROL),
        Field(
            "replacements",
            SeqOf(
                Seq(
                    (
                        Field("replacingCertificate", Cert()),
                        Field("targetTrustAnchorCell", TA_CELL_IDENTIFIER),
                    )
                )
            ),
        ),
        Field("certificationPathCertificates", SeqOf(Cert())),
        Field("executionDateTime", Time(), optional=True),
    )
)
_CS02B_RESPONSE = Seq(
    (
        Field("commandAccepted", NullFlag()),
        Field("executionOutcome", UPDATE_CREDENTIALS_OUTCOME, optional=True),
    )
)
_CS02B_ALERT = Seq(
    (
        Field("alertCode", AlertCode()),
        Field("executionDateTime", Time()),
        Field("executionOutcome", UPDATE_CREDENTIALS_OUTCOME),
    )
)
_JOIN_COMMAND = Seq(
    (
        Field("joinMethodAndRole", Int(JOIN_METHODS)),
        Field("entityId", Eui()),
        Field("deviceType", Int(DEVICE_TYPES)),
        Field("otherDeviceKeyAgreementCertificate", Cert(), optional=True),
    )
)
_JOIN_RESPONSE = Single(Field("responseCode", Int(JOIN_RESPONSE_CODES)))
_UNJOIN_COMMAND = Single(Field("entityId", Eui()))
_UNJOIN_RESPONSE = Single(Field("responseCode", Int(UNJOIN_RESPONSE_CODES)))


def _cs02(title: str, use_case: str, code: int) -> dict[tuple[int, Direction], MessageSchema]:
    return {
        (code, Direction.COMMAND): MessageSchema(use_case, f"{title} command", _CS02B_COMMAND),
        (code, Direction.RESPONSE): MessageSchema(use_case, f"{title} response", _CS02B_RESPONSE),
    }


#: (message code, direction) -> schema. Codes from gbcs-facts appendix A.
ASN1_SCHEMAS: dict[tuple[int, Direction], MessageSchema] = {
    # CS02a / CS02f Provide Security Credential Details
    **{
        (code, d): MessageSchema(uc, f"Provide Security Credential Details {d.name.lower()}", rec)
        for code, uc in ((0x0008, "CS02a"), (0x011B, "CS02f"))
        for d, rec in ((Direction.COMMAND, _CS02A_COMMAND), (Direction.RESPONSE, _CS02A_RESPONSE))
    },
    # CS02b / CS02g Update Security Credentials (one code per replacement mode)
    **_cs02("Update Security Credentials (rootBySupplier)", "CS02b", 0x0100),
    **_cs02("Update Security Credentials (rootByWanProvider)", "CS02b", 0x0101),
    **_cs02("Update Security Credentials (supplierBySupplier)", "CS02b", 0x0102),
    **_cs02("Update Security Credentials (networkOperatorByNetworkOperator)", "CS02b", 0x0103),
    **_cs02("Update Security Credentials (accessControlBrokerByACB)", "CS02b", 0x0104),
    **_cs02("Update Security Credentials (wanProviderByWanProvider)", "CS02b", 0x0105),
    **_cs02("Update Security Credentials (transCoSByTransCoS)", "CS02b", 0x0106),
    **_cs02("Update Security Credentials (supplierByTransCoS)", "CS02b", 0x0107),
    **_cs02("Update Security Credentials (anyExceptAbnormalRootByRecovery)", "CS02b", 0x0108),
    **_cs02("Update Security Credentials (anyByContingency)", "CS02b", 0x0109),
    **_cs02("Update LC Security Credentials (loadControllerByLoadController)", "CS02g", 0x0125),
    **_cs02("Update LC Security Credentials (loadControllerBySupplier)", "CS02g", 0x0126),
    (0x00CB, Direction.ALERT): MessageSchema(
        "CS02b", "Future dated Update Security Credentials alert", _CS02B_ALERT
    ),
    (0x0124, Direction.ALERT): MessageSchema(
        "CS02g", "Future dated Update LC Security Credentials alert", _CS02B_ALERT
    ),
    # CS02c Issue Security Credentials
    (0x000A, Direction.COMMAND): MessageSchema(
        "CS02c", "Issue Security Credentials command", _KEY_USAGE_ONLY
    ),
    (0x000A, Direction.RESPONSE): MessageSchema(
        "CS02c",
        "Issue Security Credentials response",
        Choice(
            (
                Field("certificationRequest", Cert(request=True)),
                Field("responseCode", Int(ISSUE_CREDENTIALS_CODES)),
            )
        ),
    ),
    # CS02d Update Device Certificate on Device
    (0x000B, Direction.COMMAND): MessageSchema(
        "CS02d", "Update Device Certificate command", Single(Field("certificate", Cert()))
    ),
    (0x000B, Direction.RESPONSE): MessageSchema(
        "CS02d",
        "Update Device Certificate response",
        Single(Field("responseCode", Int(UPDATE_DEVICE_CERT_CODES))),
    ),
    # CS02e Provide Device Certificate from Device
    (0x000C, Direction.COMMAND): MessageSchema(
        "CS02e", "Provide Device Certificate command", _KEY_USAGE_ONLY
    ),
    (0x000C, Direction.RESPONSE): MessageSchema(
        "CS02e",
        "Provide Device Certificate response",
        Choice(
            (
                Field("certificate", Cert()),
                Field("responseCode", Int(PROVIDE_DEVICE_CERT_CODES)),
            )
        ),
    ),
    # CS03 join / CS04 unjoin
    **{
        (code, d): MessageSchema(uc, f"Join Device {d.name.lower()}", rec)
        for code, uc in (
            (0x000D, "CS03A1"),
            (0x000E, "CS03B"),
            (0x00AB, "CS03A2"),
            (0x00AF, "CS03C"),
        )
        for d, rec in ((Direction.COMMAND, _JOIN_COMMAND), (Direction.RESPONSE, _JOIN_RESPONSE))
    },
    **{
        (code, d): MessageSchema(uc, f"Unjoin Device {d.name.lower()}", rec)
        for code, uc in ((0x000F, "CS04AC"), (0x0010, "CS04B"))
        for d, rec in ((Direction.COMMAND, _UNJOIN_COMMAND), (Direction.RESPONSE, _UNJOIN_RESPONSE))
    },
    # CS06 Activate Firmware
    (0x0012, Direction.COMMAND): MessageSchema(
        "CS06",
        "Activate Firmware command",
        Seq(
            (
                Field("manufacturerImageHash", Octets()),
                Field("originatorCounter", Int()),
                Field("executionDateTime", Time(), optional=True),
            )
        ),
    ),
    (0x0012, Direction.RESPONSE): MessageSchema(
        "CS06",
        "Activate Firmware response",
        Choice(
            (
                Field("commandAccepted", NullFlag()),
                Field("executionOutcome", ACTIVATE_FIRMWARE_OUTCOME),
            )
        ),
    ),
    (0x00CA, Direction.ALERT): MessageSchema(
        "CS06",
        "Future dated Firmware Activation alert",
        Seq(
            (
                Field("alertCode", AlertCode()),
                Field("executionDateTime", Time()),
                Field("originatorCounter", Int()),
                Field("executionOutcome", ACTIVATE_FIRMWARE_OUTCOME),
            )
        ),
    ),
    # CS07 Read Device Join Details
    (0x0013, Direction.COMMAND): MessageSchema(
        "CS07", "Read Device Join Details command", NullPayload()
    ),
    (0x0013, Direction.RESPONSE): MessageSchema(
        "CS07",
        "Read Device Join Details response",
        Seq(
            (
                Field("responseCode", Int(READ_JOIN_DETAILS_CODES)),
                Field("deviceLogEntries", SeqOf(DEVICE_LOG_ENTRY), optional=True),
            )
        ),
    ),
    # CS08 / CS09 PPMID-HCALCS firmware, CCS08 firmware transfer
    (0x0129, Direction.COMMAND): MessageSchema(
        "CS08", "Read PPMID/HCALCS Firmware Version command", NullPayload()
    ),
    (0x0129, Direction.RESPONSE): MessageSchema(
        "CS08",
        "Read PPMID/HCALCS Firmware Version response",
        Seq(
            (
                Field("firmwareVersion", Octets()),
                Field("responseCode", Int(READ_FIRMWARE_CODES)),
            )
        ),
    ),
    (0x012B, Direction.ALERT): MessageSchema(
        "CS09",
        "PPMID Firmware Activation alert",
        Seq(
            (
                Field("alertCode", AlertCode()),
                Field("executionDateTime", Time()),
                Field("firmwareVersion", Octets()),
                Field("activateImageResult", Int(ACTIVATE_IMAGE_RESULTS)),
            )
        ),
    ),
    (0x0128, Direction.ALERT): MessageSchema(
        "CCS08",
        "Firmware Transfer alert",
        Seq(
            (
                Field("alertCode", AlertCode()),
                Field("executionDateTime", Time()),
                Field("entityId", Eui()),
                Field("firmwareVersion", Octets()),
                Field("responseCode", Int(FIRMWARE_TRANSFER_CODES)),
            )
        ),
    ),
    # GCS28 Set Clock on GSME
    (0x007F, Direction.COMMAND): MessageSchema(
        "GCS28",
        "Set Clock on GSME command",
        Seq(
            (
                Field("validityIntervalStart", Time()),
                Field("validityIntervalEnd", Time()),
            )
        ),
    ),
    (0x007F, Direction.RESPONSE): MessageSchema(
        "GCS28",
        "Set Clock on GSME response",
        Seq(
            (
                Field("deviceTime", Time()),
                Field("deviceTimeStatus", Int(DEVICE_TIME_STATUS)),
            )
        ),
    ),
    # GCS59 / GCS62 GPF device log restore / backup
    (0x008C, Direction.COMMAND): MessageSchema(
        "GCS59",
        "Restore GPF Device Log command",
        Seq((Field("deviceLogEntries", SeqOf(DEVICE_LOG_ENTRY)),)),
    ),
    (0x008C, Direction.RESPONSE): MessageSchema(
        "GCS59",
        "Restore GPF Device Log response",
        Seq(
            (
                Field(
                    "restoreOutcomes",
                    SeqOf(
                        Seq(
                            (
                                Field("deviceLogEntry", DEVICE_LOG_ENTRY),
                                Field("joinResponseCode", Int(GPF_RESTORE_JOIN_CODES)),
                            )
                        )
                    ),
                ),
            )
        ),
    ),
    (0x00B2, Direction.ALERT): MessageSchema(
        "GCS62",
        "Backup GPF Device Log alert",
        Seq(
            (
                Field("alertCode", AlertCode()),
                Field("backupDateTime", Time()),
                Field("deviceLogEntries", SeqOf(DEVICE_LOG_ENTRY)),
            )
        ),
    ),
}


def schema_for(message_code: int | None, cra: int | None) -> MessageSchema | None:
    if message_code is None or cra is None:
        return None
    try:
        return ASN1_SCHEMAS.get((message_code, Direction(cra)))
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Tree -> JSON

_UNIVERSAL_IDENT: dict[type, int] = {
    Int: TAG_INTEGER,
    Octets: TAG_OCTET_STRING,
    Eui: TAG_OCTET_STRING,
    Time: TAG_GENERALIZED_TIME,
    NullFlag: TAG_NULL,
    KeyUsage: TAG_BIT_STRING,
    AlertCode: TAG_INTEGER,
    Cert: CONSTRUCTED | 0x10,
    Seq: CONSTRUCTED | 0x10,
    SeqOf: CONSTRUCTED | 0x10,
}
_CONSTRUCTED_SPECS = (Cert, Seq, SeqOf)


def _expected_ident(f: Field) -> int:
    spec = f.spec
    if f.tag is not None:
        return CLASS_CONTEXT | (CONSTRUCTED if isinstance(spec, _CONSTRUCTED_SPECS) else 0) | f.tag
    if isinstance(spec, Int) and spec.enumerated:
        return TAG_ENUMERATED
    return _UNIVERSAL_IDENT[type(spec)]


def _fail(path: str, node: Asn1Node, reason: str) -> GbcsDecodeError:
    return GbcsDecodeError(path, node.offset, reason)


def _format_eui(raw: bytes) -> str:
    return "-".join(f"{b:02X}" for b in raw) if len(raw) == 8 else raw.hex().upper()


def _iso(text: str) -> str:
    """``YYYYMMDDhhmmss[.f]Z`` -> ``YYYY-MM-DDThh:mm:ss[.f]Z`` (reversible)."""
    return f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:]}"


def _octets(node: Asn1Node, path: str) -> bytes:
    if isinstance(node, OctetString):
        return node.value
    if isinstance(node, TaggedPrimitive):
        return node.data
    raise _fail(path, node, "expected an OCTET STRING")


def _items(node: Asn1Node, path: str) -> list[Asn1Node]:
    if isinstance(node, Sequence | TaggedConstructed):
        return node.items
    raise _fail(path, node, "expected a SEQUENCE")


def _value(spec: Spec, node: Asn1Node, path: str) -> Any:
    if isinstance(spec, Int | AlertCode):
        if isinstance(node, Integer | Enumerated):
            v = node.value
        elif isinstance(node, TaggedPrimitive):
            if not node.data or (
                len(node.data) > 1 and (node.data[0], node.data[1] >> 7) in ((0, 0), (0xFF, 1))
            ):
                raise _fail(path, node, "implicit INTEGER is empty or not minimal")
            v = node.as_int()
        else:
            raise _fail(path, node, "expected an INTEGER")
        if isinstance(spec, AlertCode):
            if not 0 <= v <= 0xFFFF:
                raise _fail(path, node, f"alert code {v} out of range")
            return f"{v:04X}"
        return json_int(v)
    if isinstance(spec, Octets):
        return _octets(node, path).hex().upper()
    if isinstance(spec, Eui):
        return _format_eui(_octets(node, path))
    if isinstance(spec, Time):
        if not isinstance(node, GeneralizedTime) or node.IDENT != TAG_GENERALIZED_TIME:
            raise _fail(path, node, "expected a GeneralizedTime")
        return _iso(node.value)
    if isinstance(spec, NullFlag):
        return True
    if isinstance(spec, KeyUsage):
        if not isinstance(node, BitString):
            raise _fail(path, node, "expected a KeyUsage BIT STRING")
        return [KEY_USAGE_BITS.get(b, f"bit{b}") for b in node.set_bits()]
    if isinstance(spec, Cert):
        if not is_certificate(node):
            what = "PKCS#10 request" if spec.request else "X.509 certificate"
            raise _fail(path, node, f"expected an {what}")
        return certificate_summary(node)
    if isinstance(spec, SeqOf):
        return [
            _value(spec.item, item, f"{path}[{i}]") for i, item in enumerate(_items(node, path))
        ]
    if isinstance(spec, Seq):
        out: dict[str, Any] = {}
        _fill(spec.fields, _items(node, path), node, path, out)
        return out
    raise GbcsDecodeError(path, node.offset, f"no converter for {type(spec).__name__}")


def _put(out: dict[str, Any], f: Field, node: Asn1Node, path: str) -> None:
    v = _value(f.spec, node, path)
    out[f.name] = v
    if isinstance(f.spec, Int) and f.spec.codes is not None:
        out[f.name + "Text"] = f.spec.codes.get(v, f"unknown ({v})")
    elif isinstance(f.spec, AlertCode):
        out[f.name + "Text"] = alert_name(int(v, 16))


def _fill(
    fields: tuple[Field, ...], items: list[Asn1Node], parent: Asn1Node, path: str, out: dict
) -> None:
    i = 0
    n = len(items)
    for f in fields:
        if i < n and items[i].ident == _expected_ident(f):
            _put(out, f, items[i], f"{path}.{f.name}")
            i += 1
        elif not f.optional:
            at = items[i] if i < n else parent
            raise _fail(f"{path}.{f.name}", at, "missing or wrong type")
    if i < n:
        raise _fail(path, items[i], f"{n - i} unexpected trailing element(s)")


def _record_to_json(record: Record, node: Asn1Node, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(record, NullPayload):
        if not isinstance(node, Null):
            raise _fail(path, node, "expected NULL")
    elif isinstance(record, Seq):
        if not isinstance(node, Sequence):
            raise _fail(path, node, "expected a SEQUENCE")
        _fill(record.fields, node.items, node, path, out)
    elif isinstance(record, Single):
        if node.ident != _expected_ident(record.field):
            raise _fail(f"{path}.{record.field.name}", node, "wrong type")
        _put(out, record.field, node, f"{path}.{record.field.name}")
    else:
        for f in record.alternatives:
            if node.ident == _expected_ident(f):
                _put(out, f, node, f"{path}.{f.name}")
                break
        else:
            raise _fail(path, node, "matches no alternative")
    return out


def asn1_to_json(
    node: Asn1Node, message_code: int | None, cra: int | None, *, strict: bool = False
) -> dict[str, Any]:
    """Named fields when a schema is known, the generic tree otherwise.

    A payload that does not fit its schema raises :class:`GbcsDecodeError` when
    ``strict``; otherwise the generic tree is returned with ``schemaError``.
    """
    schema = schema_for(message_code, cra)
    if schema is None:
        return node_to_json(node)
    try:
        return _record_to_json(schema.record, node, schema.use_case)
    except GbcsDecodeError as exc:
        if strict:
            raise
        return {"schemaError": str(exc), "tree": node_to_json(node)}


# ---------------------------------------------------------------------------
# JSON -> tree (the simulator's encoder)


def _need(data: Mapping[str, Any], name: str, path: str) -> Any:
    try:
        return data[name]
    except (KeyError, TypeError):
        raise GbcsEncodeError(f"{path}.{name}", "missing") from None


def _hex(value: Any, path: str) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value.replace("-", "").replace(":", "").replace(" ", ""))
        except ValueError:
            pass
    raise GbcsEncodeError(path, f"not hex bytes: {value!r}")


def _der_time(value: Any, path: str) -> GeneralizedTime:
    if isinstance(value, datetime):
        return GeneralizedTime.from_datetime(value)
    if isinstance(value, str):
        text = value.replace("-", "").replace(":", "").replace("T", "")
        node = GeneralizedTime(text)
        node.content()  # validates
        return node
    raise GbcsEncodeError(path, f"not a time: {value!r}")


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GbcsEncodeError(path, f"not an integer: {value!r}")
    return value


def _build(spec: Spec, value: Any, path: str, tag: int | None) -> Asn1Node:
    node: Asn1Node
    if isinstance(spec, Int | AlertCode):
        if isinstance(spec, AlertCode) and isinstance(value, str):
            try:
                value = int(value, 16)
            except ValueError:
                raise GbcsEncodeError(path, f"not a hex alert code: {value!r}") from None
        v = _int(value, path)
        if isinstance(spec, AlertCode) and not 0 <= v <= 0xFFFF:
            raise GbcsEncodeError(path, f"alert code {v} out of range")
        node = Enumerated(v) if isinstance(spec, Int) and spec.enumerated else Integer(v)
    elif isinstance(spec, Octets | Eui):
        node = OctetString(_hex(value, path))
    elif isinstance(spec, Time):
        node = _der_time(value, path)
    elif isinstance(spec, NullFlag):
        node = Null()
    elif isinstance(spec, KeyUsage):
        if isinstance(value, BitString):
            node = value
        else:
            names = {v: k for k, v in KEY_USAGE_BITS.items()}
            bits: list[int] = []
            for b in value if isinstance(value, list | tuple) else [value]:
                if isinstance(b, int) and not isinstance(b, bool):
                    bits.append(b)
                elif isinstance(b, str) and b in names:
                    bits.append(names[b])
                elif isinstance(b, str) and b.startswith("bit") and b[3:].isdigit():
                    bits.append(int(b[3:]))
                else:
                    raise GbcsEncodeError(path, f"unknown key usage {b!r}")
            node = BitString.from_named_bits(bits)
    elif isinstance(spec, Cert):
        if isinstance(value, Asn1Node):
            node = value
        else:
            der = _hex(value.get("der") if isinstance(value, Mapping) else value, path)
            try:
                node = decode_asn1(der)
            except GbcsDecodeError as exc:
                raise GbcsEncodeError(path, f"certificate DER does not decode: {exc}") from None
        if not is_certificate(node):
            raise GbcsEncodeError(path, "not a certificate structure")
    elif isinstance(spec, SeqOf):
        if not isinstance(value, list | tuple):
            raise GbcsEncodeError(path, "expected a list")
        node = Sequence([_build(spec.item, v, f"{path}[{i}]", None) for i, v in enumerate(value)])
    elif isinstance(spec, Seq):
        node = Sequence(_build_fields(spec.fields, value, path))
    else:  # pragma: no cover - the Spec union is closed
        raise GbcsEncodeError(path, f"no builder for {type(spec).__name__}")
    if tag is None:
        return node
    if isinstance(node, Sequence):
        return TaggedConstructed(CLASS_CONTEXT, tag, node.items)
    return TaggedPrimitive(CLASS_CONTEXT, tag, node.content())


def _build_fields(fields: tuple[Field, ...], data: Any, path: str) -> list[Asn1Node]:
    if not isinstance(data, Mapping):
        raise GbcsEncodeError(path, "expected a mapping of field names")
    items: list[Asn1Node] = []
    for f in fields:
        value = data.get(f.name)
        if value is None or (isinstance(f.spec, NullFlag) and value is False):
            if f.optional:
                continue
            raise GbcsEncodeError(f"{path}.{f.name}", "missing")
        items.append(_build(f.spec, value, f"{path}.{f.name}", f.tag))
    return items


def json_to_asn1(data: Mapping[str, Any], message_code: int, cra: int) -> Asn1Node:
    """Build the payload tree of ``message_code``/``cra`` from named fields.

    Accepts the :func:`asn1_to_json` output (``...Text`` keys are ignored) and
    also plain Python values: ints, bytes, datetimes, lists of key-usage bit names.
    """
    schema = schema_for(message_code, cra)
    if schema is None:
        raise GbcsEncodeError(
            "asn1 schema", f"no ASN.1 schema for message code 0x{message_code:04X} / CRA {cra}"
        )
    rec = schema.record
    path = schema.use_case
    if isinstance(rec, NullPayload):
        return Null()
    if isinstance(rec, Seq):
        return Sequence(_build_fields(rec.fields, data, path))
    if isinstance(rec, Single):
        f = rec.field
        return _build(f.spec, _need(data, f.name, path), f"{path}.{f.name}", f.tag)
    for f in rec.alternatives:
        if isinstance(data, Mapping) and data.get(f.name) is not None:
            return _build(f.spec, data[f.name], f"{path}.{f.name}", f.tag)
    names = ", ".join(f.name for f in rec.alternatives)
    raise GbcsEncodeError(path, f"needs one of: {names}")


# ---------------------------------------------------------------------------
# Builders the simulator uses to answer commands and raise alerts

CS02B_CODES = (*range(0x0100, 0x010A), 0x0125, 0x0126)
JOIN_CODES = (0x000D, 0x000E, 0x00AB, 0x00AF)
UNJOIN_CODES = (0x000F, 0x0010)


def build_cs06_response(
    response_code: int | None = None, firmware_version: bytes = b""
) -> Asn1Node:
    """CS06 response: NULL when a future-dated command was accepted, else the outcome."""
    if response_code is None:
        return json_to_asn1({"commandAccepted": True}, 0x0012, Direction.RESPONSE)
    return json_to_asn1(
        {"executionOutcome": {"responseCode": response_code, "firmwareVersion": firmware_version}},
        0x0012,
        Direction.RESPONSE,
    )


def build_cs06_alert(
    execution_time: datetime | str,
    originator_counter: int,
    response_code: int,
    firmware_version: bytes,
    alert: int | None = None,
) -> Asn1Node:
    """0x00CA future-dated activation alert; 8F66 on success, 8F67 otherwise by default."""
    if alert is None:
        alert = ALERT_FUTURE_DATED_SUCCESS if response_code == 0 else ALERT_FUTURE_DATED_FAILURE
    return json_to_asn1(
        {
            "alertCode": alert,
            "executionDateTime": execution_time,
            "originatorCounter": originator_counter,
            "executionOutcome": {
                "responseCode": response_code,
                "firmwareVersion": firmware_version,
            },
        },
        0x00CA,
        Direction.ALERT,
    )


def build_join_response(response_code: int, message_code: int = 0x000D) -> Asn1Node:
    """CS03A1/A2/B/C response: one INTEGER (0 = success, table JOIN_RESPONSE_CODES)."""
    if message_code not in JOIN_CODES:
        raise GbcsEncodeError("message code", f"0x{message_code:04X} is not a CS03 join code")
    return json_to_asn1({"responseCode": response_code}, message_code, Direction.RESPONSE)


def build_unjoin_response(response_code: int, message_code: int = 0x000F) -> Asn1Node:
    """CS04AC/CS04B response: one INTEGER (0 ok, 1 not in device log, 2 other)."""
    if message_code not in UNJOIN_CODES:
        raise GbcsEncodeError("message code", f"0x{message_code:04X} is not a CS04 unjoin code")
    return json_to_asn1({"responseCode": response_code}, message_code, Direction.RESPONSE)


def build_cs07_response(
    response_code: int = 0, entries: list[tuple[bytes, int]] | None = None
) -> Asn1Node:
    """CS07 response: code plus (device id, device type) log entries; RTDS omits them on failure."""
    data: dict[str, Any] = {"responseCode": response_code}
    if entries is not None:
        data["deviceLogEntries"] = [{"deviceId": d, "deviceType": t} for d, t in entries]
    return json_to_asn1(data, 0x0013, Direction.RESPONSE)


def build_cs08_response(firmware_version: bytes, response_code: int = 0) -> Asn1Node:
    return json_to_asn1(
        {"firmwareVersion": firmware_version, "responseCode": response_code},
        0x0129,
        Direction.RESPONSE,
    )


def build_cs09_alert(
    execution_time: datetime | str, firmware_version: bytes, result: int = 0
) -> Asn1Node:
    """0x012B PPMID firmware activation alert (alert code 8F8B)."""
    return json_to_asn1(
        {
            "alertCode": ALERT_READ_FIRMWARE_VERSION,
            "executionDateTime": execution_time,
            "firmwareVersion": firmware_version,
            "activateImageResult": result,
        },
        0x012B,
        Direction.ALERT,
    )


def build_ccs08_alert(
    execution_time: datetime | str,
    device_id: bytes,
    firmware_version: bytes,
    response_code: int = 0,
) -> Asn1Node:
    """0x0128 CHF firmware transfer alert: 8F8A on success, 8F89 otherwise."""
    alert = ALERT_FIRMWARE_TRANSFER_SUCCESS if response_code == 0 else ALERT_FIRMWARE_TRANSFER_FAIL
    return json_to_asn1(
        {
            "alertCode": alert,
            "executionDateTime": execution_time,
            "entityId": device_id,
            "firmwareVersion": firmware_version,
            "responseCode": response_code,
        },
        0x0128,
        Direction.ALERT,
    )


def build_cs02d_response(response_code: int) -> Asn1Node:
    """CS02d response: INTEGER (0 success ... 7, UPDATE_DEVICE_CERT_CODES)."""
    return json_to_asn1({"responseCode": response_code}, 0x000B, Direction.RESPONSE)


def build_cs02e_response(
    certificate: bytes | Asn1Node | None = None, response_code: int | None = None
) -> Asn1Node:
    """CS02e response: the device certificate (DER) or an error INTEGER."""
    if (certificate is None) == (response_code is None):
        raise GbcsEncodeError("CS02e", "give exactly one of certificate / response_code")
    if certificate is not None:
        return json_to_asn1({"certificate": certificate}, 0x000C, Direction.RESPONSE)
    return json_to_asn1({"responseCode": response_code}, 0x000C, Direction.RESPONSE)


def build_cs02c_response(
    certification_request: bytes | Asn1Node | None = None, response_code: int | None = None
) -> Asn1Node:
    """CS02c response: a PKCS#10 request (DER) or an error INTEGER."""
    if (certification_request is None) == (response_code is None):
        raise GbcsEncodeError("CS02c", "give exactly one of certification_request / response_code")
    if certification_request is not None:
        return json_to_asn1(
            {"certificationRequest": certification_request}, 0x000A, Direction.RESPONSE
        )
    return json_to_asn1({"responseCode": response_code}, 0x000A, Direction.RESPONSE)


def build_cs02b_accepted_response(message_code: int = 0x0102) -> Asn1Node:
    """CS02b/CS02g response to a future-dated command: SEQUENCE{ NULL }."""
    if message_code not in CS02B_CODES:
        raise GbcsEncodeError("message code", f"0x{message_code:04X} is not a CS02b/g code")
    return json_to_asn1({"commandAccepted": True}, message_code, Direction.RESPONSE)


def build_gcs28_response(device_time: datetime | str, status: int = 0) -> Asn1Node:
    return json_to_asn1(
        {"deviceTime": device_time, "deviceTimeStatus": status}, 0x007F, Direction.RESPONSE
    )


def build_gcs62_alert(backup_time: datetime | str, entries: list[tuple[bytes, int]]) -> Asn1Node:
    """0x00B2 GPF device-log backup alert (alert code 8071)."""
    return json_to_asn1(
        {
            "alertCode": ALERT_GPF_DEVICE_LOG_CHANGED,
            "backupDateTime": backup_time,
            "deviceLogEntries": [{"deviceId": d, "deviceType": t} for d, t in entries],
        },
        0x00B2,
        Direction.ALERT,
    )
