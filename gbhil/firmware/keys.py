"""Where the image signing key comes from: a PEM the user gives, or the rig's own PKI.

GBCS images are signed by the authorising Supplier's Digital Signing key (the 11.1 template
verifies with the RTDS supplier DS certificate), so the rig default is the simulated
supplier's DS key. Key material is never printed or logged.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.firmware.image import FirmwareImageError


def load_signing_key(path: Path, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from a PEM file (PKCS#8 or SEC1)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password)
    except (ValueError, TypeError) as exc:
        raise FirmwareImageError(f"{path}: not a readable PEM private key "
                                 f"({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve,
                                                                         ec.SECP256R1):
        raise FirmwareImageError(f"{path}: GBCS signs with an ECDSA P-256 key")
    return key


def load_verifying_key(path: Path) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from a PEM certificate or a PEM public key."""
    data = path.read_bytes()
    key: object
    try:
        key = x509.load_pem_x509_certificate(data).public_key()
    except ValueError:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise FirmwareImageError(f"{path}: neither a PEM certificate nor a PEM "
                                     "public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve,
                                                                        ec.SECP256R1):
        raise FirmwareImageError(f"{path}: GBCS verifies with an ECDSA P-256 key")
    return key


def rig_supplier_keys(seed: int = 1) -> tuple[ec.EllipticCurvePrivateKey,
                                              ec.EllipticCurvePublicKey]:
    """The simulated rig's supplier DS key pair (the rig PKI of ``seed``)."""
    from gbhil.devices.trust import Role
    from gbhil.rigs.simulated import PARTIES, rig_keystore

    store = rig_keystore(seed)
    eui = PARTIES[Role.SUPPLIER]
    private, public = store.ds_private(eui), store.ds_public(eui)
    if private is None or public is None:
        raise FirmwareImageError("the rig PKI has no supplier DS key")
    return private, public
