"""The DCC emulator: a rig's devices behind the DUIS web services, SMKI service and outbox.

``DccEmulator(rig, users, inventory, cpl)`` wires :class:`~gbhil.dcc.processing.
DccProcessor` to the rig (commands go to ``rig.send``; the hub's responses, alerts and
power events come back through ``rig.on_wan`` / ``rig.on_power``), to the
:class:`~gbhil.dcc.delivery.Outbox` and to the HTTP servers (DUIS on 8079, SMKI on 8083).

Time. Everything runs on one event loop, the rig's, and reads the rig's clock:

* **stepped (tests)**: the embedded rig's clock is virtual; ``rig.run(emulator.start())``
  starts the servers on the rig's stepped loop and the test's HTTP client runs there too
  (``rig.run(test())``). Loopback sockets are ready as soon as the peer wrote, so real
  HTTP and virtual time coexist: virtual time only jumps when every task waits on a timer,
  i.e. a 3-minute outage, a 300 s retry window or a GSME wake cycle cost nothing. Do not
  wait on other threads or remote hosts in this mode (they do not hold virtual time back).
* **real time (``gbhil serve``)**: :func:`build_rig` gives the same rig on a
  :class:`~gbhil.simulator.RealTimeClock` and an ordinary asyncio loop, so outside clients
  (curl, Node-RED, DCC Boxed tools) see wall-clock behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from gbhil.dcc.cpl import Cpl, CplEntry, CplError, simulated_certificates
from gbhil.dcc.delivery import MessageKind, Outbox
from gbhil.dcc.endpoint import (
    DEFAULT_DUIS_PORT,
    DuisEndpoint,
    build_app,
    client_ssl_context,
    server_ssl_context,
)
from gbhil.dcc.inventory import AssociationKind, DeviceStatus, DeviceType, Inventory, NewDevice
from gbhil.dcc.inventory_requests import InventoryService
from gbhil.dcc.processing import AlertThrottlePolicy, DccProcessor, ProcessingPolicy
from gbhil.dcc.smki_service import DEFAULT_SMKI_PORT, SmkiRepository, SmkiService
from gbhil.dcc.users import UserDirectory
from gbhil.duis import load_schema
from gbhil.duis.model import format_eui
from gbhil.rigs.simulated import DEVICES, SimulatedRig
from gbhil.simulator import RealTimeClock
from gbhil.smki import KeyStore, SmkiError, generate_pki

log = logging.getLogger(__name__)

#: Meter points of the default rig's meters (13-digit MPAN, 10-digit MPRN).
DEFAULT_MPXN: Mapping[str, str] = {"esme": "1900000000013", "gsme": "7000000001"}
#: MAP ID of the default rig's meters (SECMP0011: 1-4 alphanumerics).
DEFAULT_MAP_ID = "GBHL"
#: Premises of the default rig (8.2 searches by UPRN or postcode).
DEFAULT_UPRN = 100023336956
DEFAULT_POSTCODE = "SW1A 1AA"
#: Identity of rig devices without a device profile (the PPMID).
DEFAULT_IDENTITY: Mapping[str, Any] = {"manufacturer": "gbhil", "model": "GBHIL-PPMID",
                                       "hardware_version": "1.0", "firmware_version": "01000000",
                                       "gbcs_version": "4.0"}


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Server TLS (certificate, key, client CA) and the DCC's client identity for https
    receive URLs (``client_*``), all PEM paths."""

    certificate: str
    key: str
    ca: str | None
    client_certificate: str | None = None
    client_key: str | None = None
    require_client_certificate: bool = True


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Where the emulator listens and how it behaves. ``None`` ports: no server (in-process
    use through ``emulator.processor``); 0: any free port."""

    host: str = "127.0.0.1"
    duis_port: int | None = DEFAULT_DUIS_PORT
    smki_port: int | None = DEFAULT_SMKI_PORT
    tls: TlsFiles | None = None
    #: SQLite file for the outbox and the acknowledged-but-unanswered requests.
    store_path: str = ":memory:"
    #: Folder holding the Users' test keys (told to clients in ``GET /gbhil/info``).
    credentials_dir: str | None = None
    schema_version: str | None = None
    schema_folder: str | None = None
    policy: ProcessingPolicy = field(default_factory=ProcessingPolicy)
    throttle: AlertThrottlePolicy = field(default_factory=AlertThrottlePolicy)


class DccEmulator:
    """The DCC side of a rig (see the module docstring)."""

    def __init__(
        self,
        rig: SimulatedRig,
        users: UserDirectory,
        inventory: Inventory,
        cpl: Cpl,
        clock: Any = None,
        *,
        config: EmulatorConfig | None = None,
        service: InventoryService | None = None,
    ) -> None:
        self.rig = rig
        self.users = users
        self.inventory = inventory
        self.cpl = cpl
        self.clock = clock or rig.clock
        self.config = config or EmulatorConfig()
        self.service = service or InventoryService(inventory, cpl)
        cfg = self.config
        schema = (load_schema(cfg.schema_version, cfg.schema_folder) if cfg.schema_version
                  else load_schema(folder=cfg.schema_folder))
        client_ssl = None
        if cfg.tls is not None and cfg.tls.ca is not None:
            client_ssl = client_ssl_context(cfg.tls.ca, cfg.tls.client_certificate,
                                            cfg.tls.client_key)
        self.outbox = Outbox(users, self.clock, path=cfg.store_path, ssl_context=client_ssl)
        keystore = rig.keystore
        self.processor = DccProcessor(
            users=users, inventory=self.service, security=rig.dcc, clock=self.clock,
            wan=rig.send, sink=self._sink, schema=schema, policy=cfg.policy,
            throttle=cfg.throttle, certificate=_certificate_lookup(keystore),
            store_path=cfg.store_path,
            firmware_delivery=_firmware_delivery(rig),
        )
        self.smki = SmkiRepository.from_keystores(
            [keystore], self.clock.now,
            extra=[u.xml_certificate for u in users if u.xml_certificate is not None])
        self.endpoint: DuisEndpoint | None = None
        self.smki_service: SmkiService | None = None
        self.started = False

    def _sink(self, user_id: str, body: bytes, kind: MessageKind, request_id: str | None
              ) -> None:
        self.outbox.enqueue(user_id, body, kind, request_id=request_id)

    def _on_wan(self, raw: bytes) -> None:
        self.processor.device_message(raw)

    def _on_power(self, event: Any) -> None:
        self.processor.power_event(event.kind, event.chf, event.at)

    @property
    def duis_url(self) -> str | None:
        return None if self.endpoint is None else self.endpoint.url

    @property
    def smki_url(self) -> str | None:
        return None if self.smki_service is None else self.smki_service.url

    async def start(self) -> None:
        """Start on the running loop (the rig's): outbox, recovery, servers, rig wiring."""
        if self.started:
            return
        cfg = self.config
        self.rig.on_wan = self._on_wan
        self.rig.on_power = self._on_power
        await self.outbox.start()
        answered = {e.request_id for e in self.outbox.queued() + self.outbox.failed()
                    if e.kind is MessageKind.RESPONSE and e.request_id is not None}
        recovered = self.processor.recover(answered)
        if recovered:
            log.info("%d requests acknowledged before a restart were closed with E21/E31",
                     recovered)
        if cfg.smki_port is not None:
            self.smki_service = SmkiService(self.smki, host=cfg.host, port=cfg.smki_port)
            await self.smki_service.start()
        if cfg.duis_port is not None:
            ssl_context = None
            if cfg.tls is not None:
                ssl_context = server_ssl_context(
                    cfg.tls.certificate, cfg.tls.key, cfg.tls.ca,
                    require_client_certificate=cfg.tls.require_client_certificate)
            extra: dict[str, Any] = {"smki": self.smki_url}
            if cfg.credentials_dir is not None:
                extra["credentialsDir"] = cfg.credentials_dir
            app = build_app(self.processor, self.users, on_users_changed=self.outbox.redeliver,
                            extra_info=extra)
            self.endpoint = DuisEndpoint(app, host=cfg.host, port=cfg.duis_port,
                                         ssl_context=ssl_context)
            await self.endpoint.start()
        self.started = True

    async def stop(self) -> None:
        if not self.started:
            return
        if self.endpoint is not None:
            await self.endpoint.stop()
        if self.smki_service is not None:
            await self.smki_service.stop()
        await self.processor.close()
        await self.outbox.stop()
        self.outbox.close()
        self.rig.on_wan = None
        self.rig.on_power = None
        self.started = False


def _certificate_lookup(keystore: KeyStore) -> Callable[[str, str], bytes | None]:
    def lookup(eui: str, usage: str) -> bytes | None:
        try:
            cert = keystore.certificate(eui, usage.lower())
        except (SmkiError, ValueError):
            return None
        return None if cert is None else cert.public_bytes(serialization.Encoding.DER)

    return lookup


# --- Building a rig and its DCC data ------------------------------------------------------------


def build_rig(
    *,
    real_time: bool = False,
    seed: int | None = 1,
    keystore: KeyStore | None = None,
    start: dt.datetime | None = None,
) -> SimulatedRig:
    """The embedded default rig, stepped (tests) or on the wall clock (``gbhil serve``)."""
    kwargs: dict[str, Any] = {"seed": seed, "keystore": keystore}
    if start is not None:
        kwargs["start"] = start
    if not real_time:
        return SimulatedRig.build(**kwargs)
    rig = SimulatedRig.build(clock=RealTimeClock(), **kwargs)
    if rig._loop is None:
        rig._loop = asyncio.new_event_loop()
    return rig


def zaz1_keystore(folder: str | os.PathLike[str], *, seed: int | None = 1) -> KeyStore:
    """DCC Boxed's published ZAZ1 organisation credentials (``keystore.json``, or the
    ``orgkeys`` files) for every organisation, plus freshly issued device keys for the
    rig's simulated devices (ZAZ1 publishes no device private keys)."""
    root = Path(folder)
    if (root / "keystore.json").is_file():
        zaz1 = KeyStore.from_zaz1_json(root / "keystore.json")
    elif (root / "orgkeys").is_dir():
        zaz1 = KeyStore.from_orgkeys_folder(root / "orgkeys")
    elif root.is_file():
        zaz1 = KeyStore.from_zaz1_json(root) if root.suffix == ".json" else KeyStore.load(root)
    else:
        raise SmkiError(f"{root}: neither keystore.json nor orgkeys/ (the ZAZ1 layout)")
    devices = {eui.hex(): kind.value for eui, kind in DEVICES.values()}
    store = generate_pki(None, organisations={}, devices=devices, seed=seed).keystore
    store.extend(zaz1)
    return store


def rig_users(rig: SimulatedRig, *, seed: int | None = 1,
              receive_urls: Mapping[str, str] | None = None,
              capacity_per_minute: int | None = None) -> UserDirectory:
    """The default Users for ``rig``: credentials from its key store, missing ones issued."""
    return UserDirectory.from_keystore(rig.keystore, receive_urls=receive_urls,
                                       capacity_per_minute=capacity_per_minute,
                                       issue_missing=True, seed=seed)


def _identity(device: Any, kind: DeviceType) -> dict[str, Any]:
    profile = getattr(device, "profile", None)
    identity = dict(getattr(profile, "identity", None) or DEFAULT_IDENTITY)
    identity["device_type"] = kind.value
    identity["hardware_version"] = str(identity.get("hardware_version", ""))
    return identity


def seed_inventory(inventory: Inventory, cpl: Cpl, rig: SimulatedRig,
                   users: UserDirectory) -> None:
    """Put the rig's devices in the SMI (Commissioned, on one premises, registered to the
    default supplier and network operator) and their models on the CPL."""
    supplier = _user_id(users, "supplier", "90-B3-D5-1F-30-01-00-00")
    network = _user_id(users, "network_operator", "90-B3-D5-1F-30-02-00-00")
    kinds = {name: DeviceType(kind.value) for name, (_, kind) in DEVICES.items()
             if kind.value in DeviceType.__members__}
    devices = rig.devices()
    identities = {name: _identity(device, kinds[name]) for name, device in devices.items()}
    for name, identity in identities.items():
        entry = CplEntry.from_identity(identity,
                                       certificates=simulated_certificates(kinds[name]))
        with contextlib.suppress(CplError):  # the same model is listed already
            cpl.add(entry)
    with inventory.transaction():
        for name, device in devices.items():
            kind = kinds[name]
            identity = identities[name]
            if inventory.find(format_eui(device.eui)) is not None:
                continue
            inventory.add_device(NewDevice(
                format_eui(device.eui), kind, identity["manufacturer"], identity["model"],
                identity["hardware_version"], identity["firmware_version"],
                map_id=DEFAULT_MAP_ID if kind in (DeviceType.ESME, DeviceType.GSME) else None,
            ), status=DeviceStatus.COMMISSIONED)
            inventory.set_premises(format_eui(device.eui), uprn=DEFAULT_UPRN,
                                   postcode=DEFAULT_POSTCODE)
        # A bench rig (gbhil.rigs.bench_rig) may lack some meters: only present ones.
        ids = {name: format_eui(device.eui) for name, device in devices.items()}
        chf, gpf = ids["chf"], ids["gpf"]
        esme, gsme, ppmid = ids.get("esme"), ids.get("gsme"), ids.get("ppmid")
        meters = ((esme, "esme", ("IS", "ED")), (gsme, "gsme", ("GS", "GT")))
        for meter, name, (supplier_role, network_role) in meters:
            if meter is not None:
                inventory.set_mpxn(meter, import_mpxn=DEFAULT_MPXN[name])
                for role, user in ((supplier_role, supplier), (network_role, network)):
                    inventory.set_party(meter, role, user)
        links = (
            (esme, chf, AssociationKind.COMMS_HUB), (gsme, chf, AssociationKind.COMMS_HUB),
            (chf, gpf, AssociationKind.GAS_PROXY), (ppmid, esme, AssociationKind.JOINED),
            (esme, chf, AssociationKind.HAN_LOG), (ppmid, chf, AssociationKind.HAN_LOG),
            (gsme, gpf, AssociationKind.HAN_LOG),
        )
        present = {(a.device_id, a.other_id, a.kind) for d in ids.values()
                   for a in inventory.associations(d)}
        for device_id, other, kind in links:
            if device_id is None or other is None:
                continue
            if (device_id, other, kind) not in present:
                inventory.associate(device_id, other, kind)


def _firmware_delivery(rig: Any) -> Any:
    """SR 11.1/11.4 reach the devices by OTA from the rig's hub (none: N19 alerts)."""
    from gbhil.firmware.rig_delivery import HanOtaDelivery

    return HanOtaDelivery(rig) if hasattr(rig, "hub") and hasattr(rig, "nodes") else None


def _user_id(users: UserDirectory, name: str, fallback: str) -> str:
    try:
        return users[name].user_id
    except KeyError:
        return fallback


def default_emulator(
    rig: SimulatedRig,
    *,
    users: UserDirectory | None = None,
    config: EmulatorConfig | None = None,
    db_path: str = ":memory:",
) -> DccEmulator:
    """A ready-to-start emulator for the default rig: Users, SMI and CPL seeded from it."""
    users = users or rig_users(rig)
    inventory = Inventory(db_path, now=rig.clock.now)
    cpl = Cpl(db_path, now=rig.clock.now)
    seed_inventory(inventory, cpl, rig, users)
    return DccEmulator(rig, users, inventory, cpl, config=config)
