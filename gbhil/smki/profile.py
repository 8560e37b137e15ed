"""GB SMKI certificate profile: role numbers, key slots, OIDs and validity rules.

Everything the loader and the generator must agree on lives here, so the profile
can be audited in one place. Values marked "as seen" were read from the public
RTDS and ZAZ1 test certificates (``openssl x509 -text``); they are test-PKI
values, not the production GB SMKI ones.
"""

from __future__ import annotations

import datetime as _dt
from enum import StrEnum
from types import MappingProxyType
from typing import Final

# --- Remote Party roles (subject OU = role as two upper-case hex digits) ------------

ROLE_ROOT: Final = 0
ROLE_RECOVERY: Final = 1
ROLE_SUPPLIER: Final = 2
ROLE_NETWORK_OPERATOR: Final = 3
ROLE_ACB: Final = 4
ROLE_TRANSITIONAL_COS: Final = 5
ROLE_WAN_PROVIDER: Final = 6
ROLE_ISSUING_AUTHORITY: Final = 7
ROLE_LOAD_CONTROLLER: Final = 8
ROLE_OTHER: Final = 127
ROLE_DCC_USER_XML_SIGNING: Final = 135
ROLE_DSP_XML_SIGNING: Final = 137

#: Canonical role names (used in manifests, the CLI and ``generate_pki(organisations=)``).
ROLE_NAMES: Final = MappingProxyType(
    {
        ROLE_ROOT: "root",
        ROLE_RECOVERY: "recovery",
        ROLE_SUPPLIER: "supplier",
        ROLE_NETWORK_OPERATOR: "network_operator",
        ROLE_ACB: "acb",
        ROLE_TRANSITIONAL_COS: "transitional_cos",
        ROLE_WAN_PROVIDER: "wan_provider",
        ROLE_ISSUING_AUTHORITY: "issuing_authority",
        ROLE_LOAD_CONTROLLER: "load_controller",
        ROLE_OTHER: "other",
        ROLE_DCC_USER_XML_SIGNING: "dcc_user_xml_signing",
        ROLE_DSP_XML_SIGNING: "dsp_xml_signing",
    }
)

#: Accepted spellings -> role number (keys are lower case, ``-``/space folded to ``_``).
ROLE_ALIASES: Final = MappingProxyType(
    {
        **{name: number for number, name in ROLE_NAMES.items()},
        "access_control_broker": ROLE_ACB,
        "no": ROLE_NETWORK_OPERATOR,
        "dno": ROLE_NETWORK_OPERATOR,
        "tcos": ROLE_TRANSITIONAL_COS,
        "wan": ROLE_WAN_PROVIDER,
        "dsp": ROLE_DSP_XML_SIGNING,
    }
)

#: Roles whose certificates sign DUIS XML, not GBCS messages: kept in their own slot.
XML_SIGNING_ROLES: Final = frozenset({ROLE_DCC_USER_XML_SIGNING, ROLE_DSP_XML_SIGNING})

#: Organisation roles that get a DCC-User XML-signing certificate (as in ZAZ1).
DCC_USER_ROLES: Final = frozenset({ROLE_SUPPLIER, ROLE_NETWORK_OPERATOR, ROLE_OTHER})

#: Organisation roles that also hold a separate prepayment KA key (UTRN / PTUT).
PREPAYMENT_ROLES: Final = frozenset({ROLE_SUPPLIER})


def role_ou(role: int) -> str:
    """Subject OU for a role: two upper-case hex digits ("02", "7F", "87")."""
    return f"{role:02X}"


def parse_role_ou(ou: str) -> int:
    """Inverse of :func:`role_ou`. Three decimal digits are accepted too: ZAZ1's
    pre-1.4.1 DSP XML-signing certificate spells role 137 as "137"."""
    if 1 <= len(ou) <= 2:
        return int(ou, 16)
    if len(ou) == 3 and ou.isdigit() and int(ou) <= 255:
        return int(ou)
    raise ValueError(f"role OU {ou!r} is not two hex digits")


def role_number(name: str | int) -> int:
    """Role number from a name, alias, decimal number or 2-hex-digit OU."""
    if isinstance(name, int):
        return name
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in ROLE_ALIASES:
        return ROLE_ALIASES[key]
    if key.isdigit():
        return int(key)
    raise ValueError(f"unknown role {name!r} (known: {', '.join(ROLE_NAMES.values())})")


def role_name(role: int | None) -> str:
    """Human name of a role number; "device" for ``None`` (devices have no role)."""
    if role is None:
        return "device"
    return ROLE_NAMES.get(role, f"role-{role}")


# --- Key slots ------------------------------------------------------------------------


class Usage(StrEnum):
    """Key usage: GB SMKI certificates carry exactly one of these."""

    DS = "ds"
    KA = "ka"


class Slot(StrEnum):
    """Where a key lives for one EUI; also the RTDS file-name suffix (``<eui>-<slot>.pem``)."""

    DS = "ds"
    KA = "ka"
    PP_KA = "pp-ka"  # supplier's separate prepayment Key Agreement key
    XML_DS = "xml-ds"  # DUIS XML-signing key (roles 135 / 137); not an RTDS suffix

    @property
    def usage(self) -> Usage:
        """DS or KA, as the certificate's keyUsage must say."""
        return Usage.KA if self in (Slot.KA, Slot.PP_KA) else Usage.DS


#: Spellings accepted wherever a slot or usage is asked for.
SLOT_ALIASES: Final = MappingProxyType(
    {
        "ds": Slot.DS,
        "digitalsignature": Slot.DS,
        "digital_signature": Slot.DS,
        "ka": Slot.KA,
        "keyagreement": Slot.KA,
        "key_agreement": Slot.KA,
        "pp-ka": Slot.PP_KA,
        "pp_ka": Slot.PP_KA,
        "prepayment": Slot.PP_KA,
        "xml-ds": Slot.XML_DS,
        "xml_ds": Slot.XML_DS,
        "xml": Slot.XML_DS,
    }
)

#: ZAZ1 keystore.json usage keys.
ZAZ1_USAGE_KEYS: Final = MappingProxyType({"digitalSignature": Usage.DS, "keyAgreement": Usage.KA})

# --- Device types ---------------------------------------------------------------------

#: Device types a rig can ask certificates for. The type is not encoded in the
#: certificate (every RTDS device certificate carries the same hwType); it is
#: recorded in the manifest only.
DEVICE_TYPES: Final = ("ESME", "GSME", "CHF", "GPF", "PPMID", "HCALCS", "HHT")

# --- OIDs -----------------------------------------------------------------------------

OID_EC_PUBLIC_KEY: Final = "1.2.840.10045.2.1"
OID_PRIME256V1: Final = "1.2.840.10045.3.1.7"
OID_ECDSA_WITH_SHA256: Final = "1.2.840.10045.4.3.2"
#: RFC 4108 hardwareModuleName otherName: carries the device EUI in subjectAltName.
OID_HARDWARE_MODULE_NAME: Final = "1.3.6.1.5.5.7.8.4"
#: x500UniqueIdentifier: carries the organisation EUI (BIT STRING) in the subject.
OID_X500_UNIQUE_IDENTIFIER: Final = "2.5.4.45"
#: Smart DCC's arc (1.2.826.0.1.8641679).
OID_DCC_ARC: Final = "1.2.826.0.1.8641679"
#: hwType inside hardwareModuleName, as seen on every RTDS device certificate.
OID_DEVICE_HW_TYPE: Final = "1.2.826.0.1.8641679.1.2.2.1"
#: Certificate policy of organisation certificates, as seen (RTDS and ZAZ1 test PKI).
OID_ORGANISATION_POLICY: Final = "1.2.826.0.1.8641679.1.2.1.4"
#: Certificate policy of device certificates, as seen (RTDS test device PKI).
OID_DEVICE_POLICY: Final = "1.2.826.0.1.1800000.1.2.1.4"

# --- Certificate layout ---------------------------------------------------------------

SERIAL_BYTES: Final = 16  # positive 16-byte serials, as seen
KEY_ID_BYTES: Final = 8  # 8-byte SKI/AKI: RFC 5280 4.2.1.2 method 2 (0100 + low 60 bits of SHA-1)

#: Issuing CA subjects: (OU, CN) pairs; ``None`` leaves the attribute out.
#: Real test PKIs use "OU=07, CN=Z1" (organisations) and "CN=E357" (devices); we
#: use different CNs so a generated PKI can never be mistaken for ZAZ1.
ROOT_CA_SUBJECT: Final = (role_ou(ROLE_ROOT), "GBHIL TEST ROOT")
ORGANISATION_CA_SUBJECT: Final = (role_ou(ROLE_ISSUING_AUTHORITY), "G1")
DEVICE_CA_SUBJECT: Final = (None, "G357")

#: Organisation certificates: 10 years, 00:00:00 to 23:59:59 the day before (as seen).
ORGANISATION_VALIDITY_YEARS: Final = 10
#: Device certificates (and our CAs) never expire: GeneralizedTime 99991231235959Z (as seen).
NO_EXPIRY: Final = _dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=_dt.UTC)
#: notBefore of seeded PKIs, so that seeded output is byte-for-byte reproducible.
SEEDED_NOT_BEFORE: Final = _dt.datetime(2025, 1, 1, tzinfo=_dt.UTC)

#: Default organisations of a generated PKI: the RTDS EUIs, so RTDS-shaped
#: messages address the same parties.
DEFAULT_ORGANISATIONS: Final = MappingProxyType(
    {
        "supplier": "90B3D51F30010000",
        "network_operator": "90B3D51F30020000",
        "acb": "90B3D51F30000002",
        "recovery": "90B3D51F30000001",
        "transitional_cos": "90B3D51F30000004",
        "wan_provider": "90B3D51F30000007",
    }
)

TEST_KEYS_WARNING: Final = (
    "TEST KEYS ONLY: generated by gbhil for a test rig; never use or accept them in production"
)
