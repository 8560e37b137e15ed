"""DCC Users: who may talk to the emulator, with which roles, keys and receive address.

A DCC User is an organisation with a User ID (EUI-64, the BusinessOriginatorID of its
requests), one or more User Roles (IS, ES, GS, ED, GT, RSA, MDR, OU), a role-135
XML-signing certificate (DUIS signatures are checked against it), a Receive Response
Service address the DCC POSTs responses and alerts to, and a traffic allocation (requests
per minute, HTTP 429 beyond it). The DCC itself signs with its role-137 DSP XML-signing
key (:class:`DccIdentity`).

Keys come from a :class:`gbhil.smki.KeyStore`: the rig's generated PKI by default, or the
ZAZ1 keystore DCC Boxed users already have. Private keys are test keys; they are kept so
tests and ``gbhil duis send`` can sign as a User, and are never shown in ``repr`` or logs.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.dcc.inventory_requests import UserContext
from gbhil.duis.model import DCC_EUI, DuisModelError, format_eui
from gbhil.duis.xmldsig import XmlInput, sign
from gbhil.smki import KeyStore, certificate_eui, certificate_role, generate_pki

#: Remote Party Role of a DCC User's XML-signing certificate (DUIS requests, E65 otherwise).
ROLE_USER_XML_SIGNING = 135
#: Remote Party Role of the DSP's XML-signing certificate (the DCC's own responses).
ROLE_DSP_XML_SIGNING = 137
#: User Roles DUIS knows (duis-request-matrix "Eligible User Roles", plus MDR).
USER_ROLES = frozenset({"IS", "ES", "GS", "ED", "GT", "RSA", "MDR", "OU"})
#: Registration roles: the SMI records which User holds them for a Device.
SUPPLIER_ROLES = frozenset({"IS", "ES", "GS"})
NETWORK_ROLES = frozenset({"ED", "GT"})


class UserStatus(enum.StrEnum):
    """A User's SEC status; a suspended User gets E3 on every request."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True)
class UserSpec:
    """A User the emulator creates: name, User ID, roles, and the SMKI organisation role
    used when gbhil has to issue its credentials (``generate_pki`` role name)."""

    name: str
    user_id: str
    roles: frozenset[str]
    organisation: str


#: The Users of the default rig. The first three are the ZAZ1 identities DCC Boxed's tools
#: ship keys for (supplier, network operator, "otherUser"); the second supplier exists so
#: tests can ask for a device they are not registered for (E4).
DEFAULT_USERS: tuple[UserSpec, ...] = (
    UserSpec("supplier", "90-B3-D5-1F-30-01-00-00", frozenset({"IS", "GS"}), "supplier"),
    UserSpec("network_operator", "90-B3-D5-1F-30-02-00-00", frozenset({"ED", "GT"}),
             "network_operator"),
    UserSpec("other_user", "00-DB-12-34-56-78-00-04", frozenset({"OU"}), "other"),
    UserSpec("supplier2", "90-B3-D5-1F-30-03-00-00", frozenset({"IS", "GS"}), "supplier"),
)


@dataclass(frozen=True, slots=True)
class DccUser:
    """One DCC User as the emulator knows it."""

    user_id: str
    name: str
    roles: frozenset[str]
    xml_certificate: x509.Certificate | None = field(default=None, compare=False)
    #: Test key, for clients acting as this User; the DCC never needs it.
    xml_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False, compare=False)
    receive_url: str | None = None
    capacity_per_minute: int | None = None
    status: UserStatus = UserStatus.ACTIVE

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_id", format_eui(self.user_id))
        roles = frozenset(r.strip().upper() for r in self.roles)
        unknown = roles - USER_ROLES
        if unknown:
            raise ValueError(f"{self.name}: unknown User Roles {sorted(unknown)}")
        object.__setattr__(self, "roles", roles)
        if self.capacity_per_minute is not None and self.capacity_per_minute <= 0:
            raise ValueError(f"{self.name}: capacity_per_minute must be positive")

    @property
    def eui(self) -> bytes:
        return bytes.fromhex(self.user_id.replace("-", ""))

    @property
    def context(self) -> UserContext:
        """The view the inventory service takes of this User."""
        return UserContext(self.user_id, self.roles)

    def sign(self, xml: bytes) -> bytes:
        """Sign a request as this User (tests and the CLI; needs the test key)."""
        if self.xml_key is None or self.xml_certificate is None:
            raise ValueError(f"User {self.name} ({self.user_id}) has no XML-signing key here")
        return sign(xml, self.xml_key, self.xml_certificate)


@dataclass(frozen=True, slots=True)
class DccIdentity:
    """The DCC's own XML-signing identity (role 137): every response and alert is signed
    with it so Users can check where it came from."""

    eui: str
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)

    def sign(self, xml: XmlInput, *, in_place: bool = False) -> bytes:
        """Sign a response or alert; ``in_place`` hands over a freshly built element."""
        return sign(xml, self.key, self.certificate, in_place=in_place)


class UserDirectory:
    """Every User of one emulator, by User ID, plus the certificates signatures resolve to.

    Lookups are dict gets; changes (receive URL, capacity, status) replace the frozen
    record so readers never see half an update.
    """

    def __init__(
        self,
        users: Iterable[DccUser],
        dcc: DccIdentity,
        *,
        certificates: Iterable[x509.Certificate] = (),
    ) -> None:
        self.dcc = dcc
        self._users: dict[str, DccUser] = {}
        for user in users:
            if user.user_id in self._users:
                raise ValueError(f"User ID {user.user_id} is listed twice")
            self._users[user.user_id] = user
        self._by_serial: dict[int, x509.Certificate] = {}
        for cert in certificates:
            self._by_serial.setdefault(cert.serial_number, cert)
        for user in self._users.values():
            if user.xml_certificate is not None:
                self._by_serial[user.xml_certificate.serial_number] = user.xml_certificate
        self._by_serial.setdefault(dcc.certificate.serial_number, dcc.certificate)

    def __iter__(self) -> Iterator[DccUser]:
        return iter(self._users.values())

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, str) and self.get(user_id) is not None

    def get(self, user_id: str) -> DccUser | None:
        try:
            return self._users.get(format_eui(user_id))
        except DuisModelError:
            return None

    def __getitem__(self, key: str) -> DccUser:
        """By User ID or by name (``users["supplier"]``)."""
        found = self.get(key) if "-" in key or len(key) == 16 else None
        if found is None:
            found = next((u for u in self._users.values() if u.name == key), None)
        if found is None:
            raise KeyError(f"no DCC User {key!r}")
        return found

    def update(self, user_id: str, **changes: object) -> DccUser:
        """Replace fields of one User (``receive_url``, ``capacity_per_minute``, ``status``)."""
        user = self[user_id]
        updated = dataclasses.replace(user, **changes)  # type: ignore[arg-type]
        self._users[user.user_id] = updated
        if updated.xml_certificate is not None:
            self._by_serial[updated.xml_certificate.serial_number] = updated.xml_certificate
        return updated

    def resolve_certificate(self, serial: int, issuer: str) -> x509.Certificate | None:
        """The XML-DSig resolver: any certificate the DCC knows, by serial (the way DCC
        Boxed's validator looks them up). Role and EUI are checked by the caller."""
        del issuer
        return self._by_serial.get(serial)

    def holders(self, role: str) -> list[DccUser]:
        return [u for u in self._users.values() if role in u.roles]

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_keystore(
        cls,
        keystore: KeyStore,
        specs: Iterable[UserSpec] = DEFAULT_USERS,
        *,
        dcc_eui: str = DCC_EUI,
        receive_urls: Mapping[str, str] | None = None,
        capacity_per_minute: int | None = None,
        issue_missing: bool = False,
        seed: int | None = None,
    ) -> UserDirectory:
        """Users whose role-135 credentials are in ``keystore`` (ZAZ1 or a rig PKI).

        With ``issue_missing`` a User without credentials gets freshly issued ones (its own
        little test PKI, seeded when ``seed`` is given); otherwise it is left out. The DCC
        identity is the role-137 key of ``dcc_eui``.
        """
        urls = {format_eui(k): v for k, v in (receive_urls or {}).items()}
        extra: list[x509.Certificate] = []
        users: list[DccUser] = []
        for index, spec in enumerate(specs):
            cert = keystore.certificate(spec.user_id, "xml-ds")
            key = keystore.private_key(spec.user_id, "xml-ds")
            if (cert is None or key is None) and issue_missing:
                issued = generate_pki(
                    None,
                    organisations={spec.organisation: spec.user_id.replace("-", "")},
                    seed=None if seed is None else seed * 1000 + index,
                ).keystore
                cert = issued.certificate(spec.user_id, "xml-ds")
                key = issued.private_key(spec.user_id, "xml-ds")
                extra.extend(e.certificate for e in issued if e.certificate is not None)
            if cert is None or key is None or not isinstance(key, ec.EllipticCurvePrivateKey):
                continue
            users.append(
                DccUser(
                    spec.user_id,
                    spec.name,
                    spec.roles,
                    cert,
                    key,
                    receive_url=urls.get(format_eui(spec.user_id)),
                    capacity_per_minute=capacity_per_minute,
                )
            )
        dcc_cert = keystore.certificate(dcc_eui, "xml-ds")
        dcc_key = keystore.private_key(dcc_eui, "xml-ds")
        if dcc_cert is None or not isinstance(dcc_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"the key store has no DSP XML-signing key for {dcc_eui}")
        if certificate_role(dcc_cert) != ROLE_DSP_XML_SIGNING:
            raise ValueError(f"{dcc_eui}'s XML-signing certificate is not role 137")
        known = [e.certificate for e in keystore if e.certificate is not None]
        return cls(
            users,
            DccIdentity(format_eui(dcc_eui), dcc_cert, dcc_key),
            certificates=[*known, *extra],
        )

    # --- export -------------------------------------------------------------------------

    def write_credentials(self, folder: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
        """Write each User's XML-signing certificate and key (PEM; key files mode 0600) and
        the DCC's certificate; return ``{user_id: {"certificate": path, "key": path}}``
        (``"dcc"`` for the DCC, certificate only). Names follow the RTDS keystore style
        (``<eui>-xml-ds.pem`` / ``.key``)."""
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        out: dict[str, dict[str, str]] = {}
        for user in self._users.values():
            if user.xml_certificate is None:
                continue
            stem = user.user_id.replace("-", "").lower()
            cert_path = root / f"{stem}-xml-ds.pem"
            cert_path.write_bytes(user.xml_certificate.public_bytes(serialization.Encoding.PEM))
            paths = {"certificate": str(cert_path)}
            if user.xml_key is not None:
                key_path = root / f"{stem}-xml-ds.key"
                _write_private(key_path, user.xml_key)
                paths["key"] = str(key_path)
            out[user.user_id] = paths
        dcc_path = root / f"{self.dcc.eui.replace('-', '').lower()}-dsp-xml-ds.pem"
        dcc_path.write_bytes(self.dcc.certificate.public_bytes(serialization.Encoding.PEM))
        out["dcc"] = {"certificate": str(dcc_path)}
        return out

    def summary(self) -> list[dict[str, object]]:
        """What ``gbhil serve`` prints: no key material, only identities."""
        return [
            {
                "id": u.user_id,
                "name": u.name,
                "roles": sorted(u.roles),
                "receiveUrl": u.receive_url,
                "capacityPerMinute": u.capacity_per_minute,
                "status": str(u.status),
            }
            for u in self._users.values()
        ]


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def signer_problem(certificate: x509.Certificate, originator: str) -> str | None:
    """Why ``certificate`` may not sign a request from ``originator``: None when it may.

    Returns the DUIS code: E65 when it is not a role-135 XML-signing certificate (seed
    003), E100 when it belongs to another organisation (authentication failed).
    """
    if certificate_role(certificate) != ROLE_USER_XML_SIGNING:
        return "E65"
    eui = certificate_eui(certificate)
    if eui is None or format_eui(eui) != format_eui(originator):
        return "E100"
    return None


#: Organisation role name (generate_pki) per User Role, for issuing missing credentials.
ORGANISATION_FOR_ROLE: Mapping[str, str] = MappingProxyType(
    {
        "IS": "supplier",
        "ES": "supplier",
        "GS": "supplier",
        "ED": "network_operator",
        "GT": "network_operator",
    }
)


def spec_for(name: str, user_id: str, roles: Iterable[str]) -> UserSpec:
    """A :class:`UserSpec` for a rig-file User, guessing its SMKI organisation role."""
    role_set = frozenset(r.strip().upper() for r in roles)
    organisation = next(
        (ORGANISATION_FOR_ROLE[r] for r in sorted(role_set) if r in ORGANISATION_FOR_ROLE), "other"
    )
    return UserSpec(name, format_eui(user_id), role_set, organisation)
