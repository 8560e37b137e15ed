"""A device's own keys and its trust anchor cells.

A SMETS2 device holds its own DS and KA private keys and, per Remote Party
role, the public keys it trusts (GBCS trust anchor cells, replaced by CS02b/g).
:class:`DeviceKeys` exposes exactly that through the codec's KeyStore protocol,
so a device can only verify and protect what a real one could.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.smki import KeyStore


class Role(IntEnum):
    """Remote Party roles of the trust anchor cells (GB SMKI OU values)."""

    ROOT = 0
    RECOVERY = 1
    SUPPLIER = 2
    NETWORK_OPERATOR = 3
    ACB = 4
    TRANSITIONAL_COS = 5
    WAN_PROVIDER = 6
    LOAD_CONTROLLER = 8


class CellUsage(IntEnum):
    """Which key of a party a cell holds."""

    DS = 0
    KA = 1
    PREPAYMENT_KA = 2


@dataclass(slots=True)
class AnchorCell:
    """One trust anchor cell: who, which key, and the credential sequence number."""

    role: Role
    usage: CellUsage
    eui: bytes
    public_key: ec.EllipticCurvePublicKey
    sequence: int = 0


#: The cells a device is commissioned with, by role; each role gets DS and KA.
DEVICE_ROLES: tuple[Role, ...] = (
    Role.ROOT,
    Role.RECOVERY,
    Role.SUPPLIER,
    Role.NETWORK_OPERATOR,
    Role.ACB,
    Role.TRANSITIONAL_COS,
    Role.WAN_PROVIDER,
    Role.LOAD_CONTROLLER,
)


@dataclass(slots=True)
class DeviceKeys:
    """Own private keys, trust anchors, and public keys of HAN peers (for PCS MACs)."""

    eui: bytes
    ds: ec.EllipticCurvePrivateKey
    ka: ec.EllipticCurvePrivateKey
    cells: dict[tuple[Role, CellUsage], AnchorCell] = field(default_factory=dict)
    peers_ka: dict[bytes, ec.EllipticCurvePublicKey] = field(default_factory=dict)

    def __repr__(self) -> str:  # never show key objects
        return f"DeviceKeys({self.eui.hex().upper()}, {len(self.cells)} cells)"

    # -- KeyStore protocol (gbhil.gbcs.keys) --------------------------------------
    def ka_private(
        self, eui: bytes, *, prepayment: bool = False
    ) -> ec.EllipticCurvePrivateKey | None:
        return self.ka if eui == self.eui and not prepayment else None

    def ka_public(
        self, eui: bytes, *, prepayment: bool = False
    ) -> ec.EllipticCurvePublicKey | None:
        if eui == self.eui and not prepayment:
            return self.ka.public_key()
        usage = CellUsage.PREPAYMENT_KA if prepayment else CellUsage.KA
        for cell in self.cells.values():
            if cell.usage is usage and cell.eui == eui:
                return cell.public_key
        return None if prepayment else self.peers_ka.get(eui)

    def ds_private(self, eui: bytes) -> ec.EllipticCurvePrivateKey | None:
        return self.ds if eui == self.eui else None

    def ds_public(self, eui: bytes) -> ec.EllipticCurvePublicKey | None:
        if eui == self.eui:
            return self.ds.public_key()
        for cell in self.cells.values():
            if cell.usage is CellUsage.DS and cell.eui == eui:
                return cell.public_key
        return None

    # -- trust anchors ----------------------------------------------------------------
    def role_of(self, eui: bytes) -> Role | None:
        """The role a party holds in this device's cells (supplier before others)."""
        for cell in self.cells.values():
            if cell.eui == eui:
                return cell.role
        return None

    def cell(self, role: Role, usage: CellUsage) -> AnchorCell | None:
        return self.cells.get((role, usage))

    def party(self, role: Role) -> bytes | None:
        cell = self.cells.get((role, CellUsage.DS)) or self.cells.get((role, CellUsage.KA))
        return cell.eui if cell else None

    def set_cell(self, cell: AnchorCell) -> None:
        self.cells[(cell.role, cell.usage)] = cell

    @classmethod
    def from_keystore(cls, eui: bytes, store: KeyStore, parties: dict[Role, bytes]) -> DeviceKeys:
        """Commission a device from a rig PKI: its own keys plus cells for ``parties``."""
        ds = store.ds_private(eui)
        ka = store.ka_private(eui)
        if ds is None or ka is None:
            raise ValueError(f"the PKI holds no private keys for device {eui.hex().upper()}")
        keys = cls(eui, ds, ka)
        for role, party in parties.items():
            for usage, pub in (
                (CellUsage.DS, store.ds_public(party)),
                (CellUsage.KA, store.ka_public(party)),
                (CellUsage.PREPAYMENT_KA, store.ka_public(party, prepayment=True)),
            ):
                if pub is not None:
                    keys.set_cell(AnchorCell(role, usage, party, pub))
        return keys
