"""GBCS key derivation and AES-GCM primitives (gbcs-facts 2.2-2.5, 2.9).

The ECDH shared secret is the expensive step; :class:`SharedSecretCache`
keeps one per (private key, public key) pair so a long run pays it once.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: SP 800-56A AlgorithmID as GBCS uses it: 4th byte 0x06, not the DLMS 0x05 (checked on RTDS).
KDF_ALGORITHM_ID = bytes.fromhex("60857406080300")
#: Security control byte: authentication only, suite 0 / GBCS "0x11" in the MAC header.
SC_AUTHENTICATED = 0x11
#: Security control byte of an encrypted payload block.
SC_ENCRYPTED = 0x31
#: Transaction-ID type byte used for payload encryption keys.
TYPE_PAYLOAD_ENCRYPTION = 0x04
MAC_LEN = 12
GCM_TAG_LEN = 16


def derive_key(
    shared_secret: bytes, originator: bytes, type_byte: int, counter: int, recipient: bytes
) -> bytes:
    """One-round single-step KDF: SHA-256(1 || Z || OtherInfo)[:16]."""
    other = (
        KDF_ALGORITHM_ID
        + originator
        + b"\x09"
        + bytes((type_byte,))
        + counter.to_bytes(8, "big")
        + recipient
    )
    return hashlib.sha256(b"\x00\x00\x00\x01" + shared_secret + other).digest()[:16]


def gcm_tag(key: bytes, iv: bytes, aad: bytes) -> bytes:
    """Full 16-byte GCM tag over empty plaintext (GMAC)."""
    return AESGCM(key).encrypt(iv, b"", aad)


def gcm_encrypt(key: bytes, iv: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Return (ciphertext, 12-byte tag)."""
    out = AESGCM(key).encrypt(iv, plaintext, aad)
    return out[: len(plaintext)], out[len(plaintext) : len(plaintext) + MAC_LEN]


def gcm_decrypt(key: bytes, iv: bytes, ciphertext: bytes, tag12: bytes, aad: bytes) -> bytes | None:
    """Decrypt with a truncated 12-byte tag; None when the tag does not match."""
    dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag12, min_tag_length=MAC_LEN)).decryptor()
    dec.authenticate_additional_data(aad)
    plaintext = dec.update(ciphertext)
    try:
        dec.finalize()
    except InvalidTag:
        return None
    return plaintext


class SharedSecretCache:
    """Caches ECDH x-coordinates per (private, public) key object pair.

    Keyed by object identity: key stores hand out the same key objects on every
    lookup, and the cache holds a reference to both so identities stay unique.
    """

    def __init__(self, max_entries: int = 65536) -> None:
        self._cache: dict[tuple[int, int], tuple[bytes, object, object]] = {}
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    def shared_secret(
        self, private: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey
    ) -> bytes:
        k = (id(private), id(public))
        hit = self._cache.get(k)
        if hit is not None:
            self.hits += 1
            return hit[0]
        self.misses += 1
        if len(self._cache) >= self._max:
            self._cache.clear()
        z = private.exchange(ec.ECDH(), public)
        self._cache[k] = (z, private, public)
        return z
