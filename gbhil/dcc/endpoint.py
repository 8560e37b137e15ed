"""The DUIS web services over HTTP(S), on DCC Boxed's paths and port.

``POST /api/v1/serviceS`` (Send Command), ``/api/v1/serviceD`` (Non-Device) and
``/api/v1/serviceT`` (Transform) take a signed DUIS request (``application/xml``) and
answer synchronously with the DCC-signed acknowledgement or result (HTTP 200), exactly as
DCC Boxed does on port 8079. Beyond DUIS codes, the HTTP status says what went wrong
before a DUIS answer was possible:

* 400: not well-formed, has a DOCTYPE (XXE guard), not XSD-valid, not an ``sr:Request``;
* 413: larger than the cap of that service (16 MiB on serviceD for SR 11.1 firmware
  images, 1 MiB elsewhere);
* 429 + ``Retry-After``: the User exceeds its traffic allocation (SECMP0067, seed 004;
  non-priority requests only);
* 405 for anything but POST.

Transport security is optional, as on DCC Boxed (plain HTTP by default). With TLS the
server speaks TLS 1.2 only with the suite DUIS Appendix AD 2.2 names
(TLS_RSA_WITH_AES_128_GCM_SHA256, seed 003) and requires a client certificate from the
rig's DCCKI test CA (:func:`generate_dccki`): DCCKI is the transport PKI, separate from
the SMKI keys that sign DUIS.

A small gbhil extension lives under ``/gbhil/``: ``GET /gbhil/info`` (the DCC's identity
and the Users, no keys) and ``PUT /gbhil/users/{id}`` to point a User's Receive Response
Service somewhere else (``gbhil duis send`` uses it for its own receiver).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gbhil.dcc.processing import DccProcessor, OverCapacity
from gbhil.dcc.users import UserDirectory
from gbhil.duis.model import DuisModelError, WebService, format_eui

log = logging.getLogger(__name__)

#: DCC Boxed's DUIS port (duis-facts 2.1).
DEFAULT_DUIS_PORT = 8079
#: Body caps: serviceD carries SR 11.1 firmware (10 240 000 octets, ~13.65 MB base64).
NON_DEVICE_MAX_BYTES = 16 * 1024 * 1024
DEVICE_MAX_BYTES = 1024 * 1024
SERVICE_CAPS: Mapping[WebService, int] = {
    WebService.NON_DEVICE: NON_DEVICE_MAX_BYTES,
    WebService.SEND_COMMAND: DEVICE_MAX_BYTES,
    WebService.TRANSFORM: DEVICE_MAX_BYTES,
}
XML_CONTENT_TYPE = "application/xml"
#: DUIS Appendix AD 2.2 (seed 003): TLS 1.2, TLS_RSA_WITH_AES_128_GCM_SHA256 (OpenSSL name).
DUIS_TLS_CIPHERS = "AES128-GCM-SHA256"
#: Used instead when the server key is not RSA (the DUIS suite needs RSA key transport).
FALLBACK_TLS_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256"
#: Validity of generated DCCKI test certificates.
DCCKI_VALIDITY = dt.timedelta(days=3650)
DCCKI_KEY_BITS = 2048


def build_app(
    processor: DccProcessor,
    users: UserDirectory,
    *,
    on_users_changed: Callable[[str], None] | None = None,
    extra_info: Mapping[str, Any] | None = None,
) -> web.Application:
    """The aiohttp application: the three services plus the ``/gbhil/`` extension."""
    app = web.Application(client_max_size=max(SERVICE_CAPS.values()) + 1)

    def service_handler(service: WebService) -> Callable[[web.Request], Any]:
        cap = SERVICE_CAPS[service]

        async def handle(request: web.Request) -> web.StreamResponse:
            if request.content_length is not None and request.content_length > cap:
                return _text(413, f"body over {cap} bytes")
            body = (await request.read() if request.content_length is not None
                    else await _read_capped(request, cap))  # chunked: stop at the cap
            if body is None:
                return _text(413, f"body over {cap} bytes")
            try:
                answer = await processor.submit(service, body)
            except OverCapacity as exc:
                return web.Response(
                    status=429, text=str(exc), headers={"Retry-After": str(exc.retry_after)}
                )
            return web.Response(
                status=answer.status,
                body=answer.body,
                content_type=answer.content_type.split(";")[0],
                headers=dict(answer.headers),
            )

        return handle

    for service in WebService:
        app.router.add_post(service.path, service_handler(service))

    async def info(request: web.Request) -> web.Response:
        del request
        return web.json_response({**directory_info(users), **(extra_info or {})})

    async def update_user(request: web.Request) -> web.Response:
        try:
            user = users[format_eui(request.match_info["user_id"])]
            data = await request.json()
        except (KeyError, ValueError, DuisModelError, json.JSONDecodeError):
            return _text(404, "unknown User or bad JSON")
        if not isinstance(data, dict):
            return _text(400, "expected a JSON object")
        changes: dict[str, Any] = {}
        if "receiveUrl" in data:
            changes["receive_url"] = data["receiveUrl"] or None
        if "capacityPerMinute" in data:
            changes["capacity_per_minute"] = data["capacityPerMinute"] or None
        try:
            updated = users.update(user.user_id, **changes)
        except (TypeError, ValueError) as exc:
            return _text(400, str(exc))
        if on_users_changed is not None:
            on_users_changed(updated.user_id)
        return web.json_response(
            {
                "id": updated.user_id,
                "receiveUrl": updated.receive_url,
                "capacityPerMinute": updated.capacity_per_minute,
            }
        )

    app.router.add_get("/gbhil/info", info)
    app.router.add_put("/gbhil/users/{user_id}", update_user)
    return app


async def _read_capped(request: web.Request, cap: int) -> bytes | None:
    """The whole body, or None as soon as it exceeds ``cap`` (nothing more is buffered)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def directory_info(users: UserDirectory) -> dict[str, Any]:
    """What ``GET /gbhil/info`` returns: identities and certificate serials, no keys."""
    return {
        "dcc": {
            "id": users.dcc.eui,
            "xmlSigningSerial": str(users.dcc.certificate.serial_number),
            "certificate": users.dcc.certificate.public_bytes(serialization.Encoding.PEM).decode(
                "ascii"
            ),
        },
        "users": users.summary(),
        "paths": {s.name: s.path for s in WebService},
    }


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)


# --- TLS (DCCKI) ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dccki:
    """File paths of a generated DCCKI test PKI (PEM)."""

    ca_certificate: Path
    server_certificate: Path
    server_key: Path
    #: user ID (and "dcc" for the DCC's own client identity) -> (certificate, key)
    clients: Mapping[str, tuple[Path, Path]]


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gbhil DCCKI test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def generate_dccki(
    folder: str | os.PathLike[str],
    client_ids: Iterable[str],
    *,
    hosts: Iterable[str] = ("localhost", "127.0.0.1"),
    now: dt.datetime | None = None,
) -> Dccki:
    """A DCCKI test PKI: an RSA CA, a server certificate for ``hosts`` and one client
    certificate per User ID plus the DCC (for its POSTs to https receive URLs). RSA
    because the DUIS cipher suite uses RSA key transport. Test keys, mode 0600."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=1)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=DCCKI_KEY_BITS)
    ca_name = _name("gbhil DCCKI test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + DCCKI_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(
        common_name: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=DCCKI_KEY_BITS)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + DCCKI_VALIDITY)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    def save(stem: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
        cert_path, key_path = root / f"{stem}.pem", root / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path

    ca_path = root / "dccki-ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server = save("dccki-server", *issue("gbhil DCC", ExtendedKeyUsageOID.SERVER_AUTH, names))
    clients: dict[str, tuple[Path, Path]] = {}
    for client in (*client_ids, "dcc"):
        ident = client if client == "dcc" else format_eui(client)
        stem = f"dccki-client-{ident.replace('-', '').lower()}"
        clients[ident] = save(stem, *issue(ident, ExtendedKeyUsageOID.CLIENT_AUTH, []))
    return Dccki(ca_path, server[0], server[1], clients)


def server_ssl_context(
    certificate: str | os.PathLike[str],
    key: str | os.PathLike[str],
    ca: str | os.PathLike[str] | None,
    *,
    require_client_certificate: bool = True,
) -> ssl.SSLContext:
    """TLS 1.2 only, the DUIS cipher suite when the key is RSA (else ECDHE-ECDSA AES-128
    GCM), client certificates from ``ca`` required unless told otherwise."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certificate), str(key))
    server_key = serialization.load_pem_private_key(Path(key).read_bytes(), password=None)
    try:
        if isinstance(server_key, rsa.RSAPrivateKey):
            context.set_ciphers(DUIS_TLS_CIPHERS)
        else:
            context.set_ciphers(FALLBACK_TLS_CIPHERS)
    except ssl.SSLError:
        log.warning("OpenSSL refuses %s; keeping its TLS 1.2 defaults", DUIS_TLS_CIPHERS)
    if ca is not None:
        context.load_verify_locations(str(ca))
        context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
    return context


def client_ssl_context(
    ca: str | os.PathLike[str],
    certificate: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """The matching client side: TLS 1.2, trusts ``ca``, presents a client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    # Python's default client list leaves out RSA key transport, which the DUIS suite is.
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers(f"{DUIS_TLS_CIPHERS}:{FALLBACK_TLS_CIPHERS}")
    if certificate is not None and key is not None:
        context.load_cert_chain(str(certificate), str(key))
    return context


class DuisEndpoint:
    """Runs :func:`build_app` on a host and port (0 picks a free port) on the running loop."""

    def __init__(
        self,
        app: web.Application,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_DUIS_PORT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


#: Where Node-RED's dccboxed-receive node listens by default; gbhil's clients use it too.
RECEIVE_PATH = "/smartdcc/duis"


class ReceiveEndpoint:
    """A User's Receive Response Service: keeps every POSTed message and answers 204.

    For ``gbhil duis send`` and for tests. ``refuse`` makes it answer 503 (a User whose
    system is down) so the DCC's retry and failed queue can be exercised. ``wait_for``
    waits in loop time, which is virtual time on a stepped rig.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, path: str = RECEIVE_PATH) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.messages: list[bytes] = []
        self.refuse = False
        self._runner: web.AppRunner | None = None
        self._arrived: asyncio.Condition | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    async def start(self) -> None:
        self._arrived = asyncio.Condition()

        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            if self.refuse:
                return web.Response(status=503, text="receiver down")
            assert self._arrived is not None
            async with self._arrived:
                self.messages.append(body)
                self._arrived.notify_all()
            return web.Response(status=204)

        app = web.Application(client_max_size=NON_DEVICE_MAX_BYTES * 2)
        app.router.add_post(self.path, receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        if self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])

    async def wait_for(self, predicate: Callable[[list[bytes]], bool], timeout: float) -> bool:
        """True once ``predicate(messages)`` holds; False after ``timeout`` (loop) seconds."""
        assert self._arrived is not None, "start() first"
        try:
            async with asyncio.timeout(timeout):
                async with self._arrived:
                    await self._arrived.wait_for(lambda: predicate(self.messages))
        except TimeoutError:
            return predicate(self.messages)
        return True

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
