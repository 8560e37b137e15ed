"""GB SMKI keys and certificates: load test key stores, generate a rig's test PKI.

Self-contained (imports nothing from gbhil); :class:`KeyStore` satisfies
``gbhil.gbcs.keys.KeyStore`` structurally. All keys handled here are test keys.
"""

from gbhil.smki.keystore import (
    Entry,
    KeyStore,
    SmkiError,
    certificate_eui,
    certificate_role,
    certificate_usage,
    format_eui,
    format_name,
    parse_eui,
)
from gbhil.smki.pki import GeneratedPki, IssuedCa, generate_pki
from gbhil.smki.profile import DEVICE_TYPES, Slot, Usage

__all__ = [
    "DEVICE_TYPES",
    "Entry",
    "GeneratedPki",
    "IssuedCa",
    "KeyStore",
    "Slot",
    "SmkiError",
    "Usage",
    "certificate_eui",
    "certificate_role",
    "certificate_usage",
    "format_eui",
    "format_name",
    "generate_pki",
    "parse_eui",
]
