"""What the codec needs from a key store, as a Protocol (gbhil.smki implements it).

gbhil.gbcs must not import gbhil.smki (architecture rule 1), so the security
functions accept any object with these methods.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec


class KeyStore(Protocol):
    """Keys looked up by 8-byte EUI-64; ``None`` when the store does not hold it."""

    def ka_private(
        self, eui: bytes, *, prepayment: bool = False
    ) -> ec.EllipticCurvePrivateKey | None:
        """Key Agreement private key (``prepayment`` selects the supplier's -pp-ka key)."""
        ...

    def ka_public(
        self, eui: bytes, *, prepayment: bool = False
    ) -> ec.EllipticCurvePublicKey | None:
        """Key Agreement public key (from the certificate)."""
        ...

    def ds_private(self, eui: bytes) -> ec.EllipticCurvePrivateKey | None:
        """Digital Signing private key."""
        ...

    def ds_public(self, eui: bytes) -> ec.EllipticCurvePublicKey | None:
        """Digital Signing public key (from the certificate)."""
        ...
