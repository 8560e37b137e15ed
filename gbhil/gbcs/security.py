"""GBCS message protection: MAC, ECDSA signatures and payload encryption.

Which key pair, KDF inputs and IV each purpose uses is gbcs-facts 2.3; every
rule here was checked against the RTDS corpus.  Functions take a
:class:`SecurityContext` (key store, ACB identity, ECDH cache) and never log
key material.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from gbhil.gbcs.errors import GbcsSecurityError
from gbhil.gbcs.frame import Cra, GbcsMessage, GeneralSigning, Shape
from gbhil.gbcs.kdf import (
    MAC_LEN,
    SC_AUTHENTICATED,
    SC_ENCRYPTED,
    TYPE_PAYLOAD_ENCRYPTION,
    SharedSecretCache,
    derive_key,
    gcm_decrypt,
    gcm_encrypt,
    gcm_tag,
)
from gbhil.gbcs.keys import KeyStore

#: The DCC Access Control Broker of the RTDS and ZAZ1 test data.
RTDS_ACB_ID = bytes.fromhex("90B3D51F30000002")
#: Commands sent device to device over the HAN: MACed with both devices' KA keys.
DEVICE_ORIGINATED_COMMANDS = frozenset({0x0090, 0x009B, 0x0116, 0x0117, 0x0118, 0x0119})
#: AAD prefix of the message MAC: security control, invocation counter, one spare 0x00.
_P256_ORDER_BYTES = 32
ENCRYPTED_BLOCK_OVERHEAD = 1 + 4 + MAC_LEN


class Check(Enum):
    """Outcome of one security check."""

    VERIFIED = "verified"
    FAILED = "failed"
    NOT_CHECKABLE = "not-checkable"  # the key store lacks a key the check needs
    ABSENT = "absent"  # the message carries no such protection


@dataclass(slots=True)
class SecurityContext:
    """Keys plus the ECDH cache; one per process or rig, reused for every message."""

    keystore: KeyStore
    acb_id: bytes = RTDS_ACB_ID
    cache: SharedSecretCache = field(default_factory=SharedSecretCache)

    def shared_secret(self, a: bytes, b: bytes, *, prepayment: bool = False) -> bytes | None:
        """ECDH between the KA keys of ``a`` and ``b``, using whichever private key we hold."""
        ks = self.keystore
        priv = ks.ka_private(a, prepayment=prepayment)
        if priv is not None:
            pub = ks.ka_public(b)
            if pub is not None:
                return self.cache.shared_secret(priv, pub)
        priv = ks.ka_private(b)
        if priv is not None:
            pub = ks.ka_public(a, prepayment=prepayment)
            if pub is not None:
                return self.cache.shared_secret(priv, pub)
        return None


def mac_key_pair(gs: GeneralSigning, acb_id: bytes) -> tuple[bytes, bytes]:
    """The two parties whose KA keys protect this message's MAC."""
    if gs.cra is Cra.COMMAND and gs.message_code not in DEVICE_ORIGINATED_COMMANDS:
        return acb_id, gs.business_target
    return gs.business_originator, gs.business_target


def _mac_aad(gs_bytes: bytes, ic: int, sc: int) -> bytes:
    return bytes((sc,)) + ic.to_bytes(4, "big") + b"\x00" + gs_bytes


def compute_mac(
    ctx: SecurityContext,
    gs: GeneralSigning,
    gs_bytes: bytes,
    ic: int = 0,
    sc: int = SC_AUTHENTICATED,
) -> bytes | None:
    """The 12-byte MAC of an encoded GS APDU, or None when no key pair is available."""
    a, b = mac_key_pair(gs, ctx.acb_id)
    z = ctx.shared_secret(a, b)
    if z is None:
        return None
    key = derive_key(
        z, gs.business_originator, int(gs.cra), gs.originator_counter, gs.business_target
    )
    iv = gs.business_originator + ic.to_bytes(4, "big")
    return gcm_tag(key, iv, _mac_aad(gs_bytes, ic, sc))[:MAC_LEN]


def verify_mac(ctx: SecurityContext, msg: GbcsMessage, gs_bytes: bytes | None = None) -> Check:
    """Check the MAC of a MACed message; ``gs_bytes`` saves re-encoding when known."""
    if msg.shape is not Shape.MACED or msg.mac is None:
        return Check.ABSENT
    if gs_bytes is None:
        gs_bytes = msg.gs.encode()
    mac = compute_mac(ctx, msg.gs, gs_bytes, msg.invocation_counter, msg.security_control)
    if mac is None:
        return Check.NOT_CHECKABLE
    import hmac

    return Check.VERIFIED if hmac.compare_digest(mac, msg.mac) else Check.FAILED


def sign_raw(private: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256/SHA-256 as raw r || s (64 bytes)."""
    r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(_P256_ORDER_BYTES, "big") + s.to_bytes(_P256_ORDER_BYTES, "big")


def verify_raw(public: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    """Verify raw r || s; high-S is accepted, as RTDS requires."""
    if len(signature) != 2 * _P256_ORDER_BYTES:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if r == 0 or s == 0:
        return False
    try:
        public.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def verify_signature(ctx: SecurityContext, gs: GeneralSigning) -> Check:
    """Check the Business Originator's signature over the APDU."""
    if not gs.signature:
        return Check.ABSENT
    pub = ctx.keystore.ds_public(gs.business_originator)
    if pub is None:
        return Check.NOT_CHECKABLE
    return Check.VERIFIED if verify_raw(pub, gs.signed_bytes(), gs.signature) else Check.FAILED


def sign(ctx: SecurityContext, gs: GeneralSigning, signer: bytes | None = None) -> GeneralSigning:
    """Return ``gs`` with a signature by ``signer`` (default: the Business Originator)."""
    eui = gs.business_originator if signer is None else signer
    key = ctx.keystore.ds_private(eui)
    if key is None:
        raise GbcsSecurityError(f"no digital-signing private key for {eui.hex().upper()}")
    return replace(gs, signature=sign_raw(key, gs.signed_bytes()))


def protect(
    ctx: SecurityContext,
    gs: GeneralSigning,
    *,
    signed: bool,
    maced: bool,
    invocation_counter: int = 0,
) -> GbcsMessage:
    """Build a complete message: optionally signed, optionally MACed (gbcs-facts 2.7)."""
    if signed:
        gs = sign(ctx, gs)
    elif gs.signature is None:
        gs = replace(gs, signature=b"")
    if not maced:
        if not signed:
            raise GbcsSecurityError("a message must be MACed, signed, or both")
        return GbcsMessage(Shape.SIGNED, gs)
    gs_bytes = gs.encode()
    mac = compute_mac(ctx, gs, gs_bytes, invocation_counter)
    if mac is None:
        a, b = mac_key_pair(gs, ctx.acb_id)
        raise GbcsSecurityError(
            f"no key-agreement key pair for {a.hex().upper()} x {b.hex().upper()}"
        )
    return GbcsMessage(Shape.MACED, gs, mac, invocation_counter)


def precommand(gs: GeneralSigning) -> GbcsMessage:
    """The unsigned pre-command the DCC returns for a critical command."""
    return GbcsMessage(Shape.PRECOMMAND, replace(gs, signature=None))


def complete_precommand(ctx: SecurityContext, pre: GbcsMessage, signature: bytes) -> GbcsMessage:
    """Append a DCC User's signature to a pre-command and add the ACB MAC."""
    gs = replace(pre.gs, signature=signature)
    if verify_signature(ctx, gs) is Check.FAILED:
        raise GbcsSecurityError("signature on the pre-command does not verify")
    gs_bytes = gs.encode()
    mac = compute_mac(ctx, gs, gs_bytes)
    if mac is None:
        raise GbcsSecurityError("no ACB key-agreement key to MAC the command")
    return GbcsMessage(Shape.MACED, gs, mac)


# --- payload encryption ---------------------------------------------------------


def payload_key(ctx: SecurityContext, gs: GeneralSigning) -> bytes | None:
    """Key for encrypted blocks in a response or alert (type byte 0x04)."""
    other = gs.other_information
    recipient = other.supplementary_remote_party_id or gs.business_target
    counter = (
        other.supplementary_originator_counter
        if other.supplementary_originator_counter is not None
        else gs.originator_counter
    )
    z = ctx.shared_secret(recipient, gs.business_originator)
    if z is None:
        return None
    return derive_key(z, gs.business_originator, TYPE_PAYLOAD_ENCRYPTION, counter, recipient)


def decrypt_block(key: bytes, device_id: bytes, block: bytes) -> bytes | None:
    """Decrypt ``31 || IC || ciphertext || tag``; None when the tag does not match."""
    if len(block) < ENCRYPTED_BLOCK_OVERHEAD or block[0] != SC_ENCRYPTED:
        return None
    iv = device_id + block[1:5]
    return gcm_decrypt(key, iv, block[5:-MAC_LEN], block[-MAC_LEN:], block[:1])


def encrypt_block(key: bytes, device_id: bytes, plaintext: bytes, ic: int = 0) -> bytes:
    """Build ``31 || IC || ciphertext || tag`` for a response or alert payload."""
    ic_bytes = ic.to_bytes(4, "big")
    sc = bytes((SC_ENCRYPTED,))
    ct, tag = gcm_encrypt(key, device_id + ic_bytes, plaintext, sc)
    return sc + ic_bytes + ct + tag
