"""Export a rig's PKI in the RTDS key-folder naming, for outside tools.

``<eui lower hex>-ds.pem`` / ``-ka.pem`` / ``-pp-ka.pem`` / ``-xml-ds.pem`` hold the
certificates (0644); ``<eui>-<slot>.key`` the PKCS#8 PEM private keys (0600). Private
keys are written for organisations (the rig's test Users, ACB, ...) only; device
private keys only on request (``with_device_keys``). The folder reloads with
:meth:`gbhil.smki.KeyStore.from_rtds_folder` and is what e.g. SmartDCCInnovation's
gbcs-parser reads to check gbhil's messages. All keys are test keys.

The rig helpers import :mod:`gbhil.rigs` lazily: :mod:`gbhil.smki` itself stays
self-contained.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gbhil.smki.keystore import KeyStore, SmkiError
from gbhil.smki.pki import _pem_cert, _pem_key, _write_file
from gbhil.smki.profile import Slot

#: Default rig seed (as ``SimulatedRig.build``).
DEFAULT_SEED = 1


@dataclass(slots=True)
class ExportResult:
    """What :func:`export_rtds` wrote (paths only, never key material)."""

    out_dir: Path
    certificates: list[Path] = field(default_factory=list)
    private_keys: list[Path] = field(default_factory=list)
    skipped_device_keys: int = 0

    @property
    def files(self) -> list[Path]:
        return [*self.certificates, *self.private_keys]


def _is_device(store: KeyStore, eui: bytes) -> bool:
    if store.device_type(eui) is not None:
        return True
    return store.role(eui) is None and any(e.device_type for e in store.entries(eui))


def export_rtds(
    store: KeyStore,
    out_dir: str | Path,
    *,
    with_device_keys: bool = False,
    overwrite: bool = False,
) -> ExportResult:
    """Write the active certificate and key of every (EUI, slot) of ``store``."""
    root = Path(out_dir)
    plan: list[tuple[Path, bytes, int, bool]] = []  # path, data, mode, is_key
    skipped = 0
    for eui in store.euis():
        device = _is_device(store, eui)
        for slot in Slot:
            e = store.entry(eui, slot)
            if e is None:
                continue
            stem = f"{eui.hex()}-{slot.value}"
            if e.certificate is not None:
                plan.append((root / f"{stem}.pem", _pem_cert(e.certificate), 0o644, False))
            elif e.public_key is not None:
                from cryptography.hazmat.primitives import serialization

                pem = e.public_key.public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo,
                )
                plan.append((root / f"{stem}.pem", pem, 0o644, False))
            if e.private_key is not None:
                if device and not with_device_keys:
                    skipped += 1
                else:
                    plan.append((root / f"{stem}.key", _pem_key(e.private_key), 0o600, True))
    if not plan:
        raise SmkiError(f"{store.source}: nothing to export")
    if not overwrite:
        for path, _, _, _ in plan:
            if path.exists():
                raise SmkiError(f"{path}: already exists (pass --force)")
    result = ExportResult(root, skipped_device_keys=skipped)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if overwrite and not with_device_keys:
            # a re-export without device keys must not leave earlier device keys behind
            for eui in store.euis():
                if _is_device(store, eui):
                    for slot in Slot:
                        stale = root / f"{eui.hex()}-{slot.value}.key"
                        if stale.is_file():
                            os.unlink(stale)
        for path, data, mode, is_key in plan:
            _write_file(path, data, mode)
            (result.private_keys if is_key else result.certificates).append(path)
    except OSError as exc:
        raise SmkiError(f"{exc.filename or root}: cannot write ({exc.strerror or exc})") from None
    return result


def rig_pki(rig_path: str | Path | None = None, seed: int | None = None) -> KeyStore:
    """The key store a rig runs with.

    No rig file: :func:`gbhil.rigs.simulated.rig_keystore` of ``seed`` (default 1).
    A rig file with a generated PKI: the same, with the file's seed, parties and
    devices (``seed`` overrides the file's); a ``folder`` / ``zaz1`` PKI is loaded.
    """
    from gbhil.rigs.simulated import DEVICES, PARTIES, rig_keystore

    if rig_path is None:
        return rig_keystore(DEFAULT_SEED if seed is None else seed)

    from gbhil.rigs.rigfile import PkiSource, RigFileError, load_rig
    from gbhil.smki.pki import generate_pki

    try:
        rig = load_rig(rig_path)
    except RigFileError as exc:
        raise SmkiError(f"{rig_path}: {exc}") from None
    pki = rig.pki
    if pki.source is not PkiSource.GENERATED:
        path = rig.pki_path
        assert path is not None
        if pki.source is PkiSource.ZAZ1:
            return KeyStore.from_zaz1_json(path)
        return KeyStore.load(path)
    use_seed = pki.seed if seed is None else seed
    if use_seed is None:
        raise SmkiError(
            f"{rig_path}: the rig's PKI is generated afresh each run (no seed); "
            "pass --seed to export a reproducible one"
        )
    embedded = {eui: t for eui, t in DEVICES.values()}
    devices = {d.eui: d.device_type for d in rig.devices}
    if pki.party_roles == PARTIES and all(embedded.get(e) == t for e, t in devices.items()):
        return rig_keystore(use_seed)
    orgs = {name: eui.hex() for name, eui in pki.parties.items()}
    devs = {eui.hex(): t.value for eui, t in devices.items()}
    return generate_pki(None, organisations=orgs, devices=devs, seed=use_seed).keystore
