"""``gbhil serve`` (rig + DCC emulator) and ``gbhil duis send`` (a DUIS client for people).

``gbhil serve`` builds the rig on the wall clock (the embedded one, or with ``--rig`` what
the rig file describes: gbhil.rigs.build, e.g. meters behind an MQTT bus), starts the DCC
emulator on DCC Boxed's ports and prints ONE JSON line once it is ready: endpoints, the
DCC's identity and every User (ID, roles, the files holding its test keys). Stop it with
Ctrl-C or SIGTERM.

``gbhil duis send FILE`` signs a request (a template's placeholder signature is replaced;
the counter is set from the wall clock in milliseconds, as the DCC Boxed signing tool
does), POSTs it to the web service its Command Variant belongs to, receives the
asynchronous answers on a small endpoint of its own (pointing the User's Receive Response
Service at it through ``PUT /gbhil/users/{id}``) and prints every message with its GBCS
payload decoded. A CV 4 answer is signed with the User's GBCS key and sent on as CV 5 when
that key is at hand. Exit status: 0 when the exchange completed (whatever DUIS code it
carried), 2 on a transport failure, 3 when the asynchronous response did not come.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from gbhil.duis.model import (
    CommandVariant,
    DCCAlertMessage,
    DeviceAlertMessage,
    RequestID,
    ResponseMessage,
    format_eui,
    parse_response,
)
from gbhil.duis.schema import SR_NS, DuisError, parse_xml
from gbhil.duis.xmldsig import SignatureError, certificate_resolver, sign, verify

#: Exit statuses of ``gbhil duis send``.
EXIT_OK = 0
EXIT_TRANSPORT = 2
EXIT_TIMEOUT = 3
DEFAULT_URL = "http://127.0.0.1:8079"
#: How long ``duis send`` waits for the asynchronous response, and then for alerts.
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_LINGER_S = 1.0
HTTP_TIMEOUT_S = 30.0


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser(
        "serve",
        help="run the rig and the DCC emulator (DUIS on 8079)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--rig", type=Path, help="rig file (docs/rigs.md); its [pki] is used")
    serve.add_argument(
        "--zaz1",
        type=Path,
        metavar="DIR",
        help="load DCC Boxed's ZAZ1 credentials (keystore.json / orgkeys)",
    )
    serve.add_argument("--host", default=None, help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="DUIS port (8079; 0: any)")
    serve.add_argument("--smki-port", type=int, default=None, help="SMKI port (8083; 0: any)")
    serve.add_argument("--work-dir", type=Path, help="where key files go (default: a temp dir)")
    serve.add_argument("--db", type=Path, help="SQLite file for SMI, CPL and queues")
    serve.add_argument(
        "--tls", action="store_true", help="mutual TLS 1.2 with a generated DCCKI test PKI"
    )
    serve.add_argument("--seed", type=int, default=None, help="seed of generated keys")
    serve.add_argument(
        "--receive-url",
        action="append",
        default=[],
        metavar="USER=URL",
        help="a User's Receive Response Service (repeatable)",
    )
    serve.add_argument(
        "--capacity", type=int, default=None, help="requests per minute per User before HTTP 429"
    )
    serve.set_defaults(func=cmd_serve)

    duis = sub.add_parser("duis", help="DUIS client tools")
    verbs = duis.add_subparsers(dest="duis_verb", required=True, metavar="VERB")
    send = verbs.add_parser(
        "send",
        help="sign and send a DUIS request, print every answer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    send.add_argument("file", type=Path, metavar="FILE", help="DUIS request (e.g. a template)")
    send.add_argument("--url", default=DEFAULT_URL, help=f"emulator base URL ({DEFAULT_URL})")
    send.add_argument("--user", help="User ID to send as (default: the RequestID's)")
    send.add_argument("--json", action="store_true", help="one JSON object per message")
    send.add_argument("--key", type=Path, help="XML-signing private key (PEM or DER PKCS#8)")
    send.add_argument("--cert", type=Path, help="XML-signing certificate (PEM)")
    send.add_argument("--ds-key", type=Path, help="GBCS signing key for pre-commands")
    send.add_argument("--zaz1", type=Path, metavar="DIR", help="take keys from ZAZ1 files")
    send.add_argument(
        "--credentials",
        type=Path,
        metavar="DIR",
        help="folder of <eui>-xml-ds.key/.pem (default: what the emulator says)",
    )
    send.add_argument("--dcc-cert", type=Path, help="certificate to check DCC signatures")
    send.add_argument(
        "--preserve-counter", action="store_true", help="keep the RequestID counter of the file"
    )
    send.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds to wait for the asynchronous response",
    )
    send.add_argument(
        "--linger",
        type=float,
        default=DEFAULT_LINGER_S,
        help="seconds to keep collecting alerts afterwards",
    )
    send.add_argument("--receive-host", default="127.0.0.1")
    send.add_argument(
        "--receive-port", type=int, default=0, help="port of the receive endpoint (0: any)"
    )
    send.add_argument(
        "--no-register",
        action="store_true",
        help="do not repoint the User's receive URL (e.g. a real DCC Boxed)",
    )
    send.add_argument("--ca", type=Path, help="DCCKI CA for https URLs")
    send.add_argument("--client-cert", type=Path, help="DCCKI client certificate")
    send.add_argument("--client-key", type=Path, help="DCCKI client key")
    send.set_defaults(func=cmd_duis_send)


# =================================================================================================
# Request preparation (also used by the tests)
# =================================================================================================


def _tree(data: bytes) -> etree._Element:
    root = parse_xml(data).getroot()
    for old in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        root.remove(old)
    return root


def prepare_request(data: bytes, *, user: str | None = None, counter: int | None = None) -> bytes:
    """The request without its (placeholder) signature, with the RequestID's originator
    and/or counter replaced; unsigned."""
    root = _tree(data)
    rid_element = root.find(f"{_sr('Header')}/{_sr('RequestID')}")
    if rid_element is None:
        raise DuisError("the request has no sr:Header/sr:RequestID")
    rid = RequestID.parse(rid_element.text or "")
    rid = RequestID(
        format_eui(user) if user else rid.originator,
        rid.target,
        rid.counter if counter is None else counter,
    )
    rid_element.text = str(rid)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def request_id_of(data: bytes) -> RequestID:
    root = parse_xml(data).getroot()
    found = root.find(f"{_sr('Header')}/{_sr('RequestID')}")
    return RequestID.parse("" if found is None else found.text or "")


def command_variant_of(data: bytes) -> CommandVariant:
    root = parse_xml(data).getroot()
    found = root.find(f"{_sr('Header')}/{_sr('CommandVariant')}")
    return CommandVariant(int("" if found is None else (found.text or "").strip()))


def sign_pre_command(pre_command: bytes, ds_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The User's Signed Pre-Command: the pre-command plus its ECDSA signature field."""
    from gbhil.gbcs.message import decode_message
    from gbhil.gbcs.security import sign_raw

    gs = decode_message(pre_command, precommand=True).frame.gs
    return pre_command + b"\x40" + sign_raw(ds_key, gs.signed_bytes())


def signed_pre_command_request(
    request: bytes,
    signed: bytes,
    *,
    command_variant: CommandVariant = CommandVariant.SEND_SIGNED,
    execution: dt.datetime | None = None,
) -> bytes:
    """The CV 5/6/7 request for ``request``'s pre-command: same RequestID and SRV, body
    ``SignedPreCommand``; unsigned."""
    root = _tree(request)
    cv = root.find(f"{_sr('Header')}/{_sr('CommandVariant')}")
    body = root.find(_sr("Body"))
    if cv is None or body is None:
        raise DuisError("not a DUIS request")
    cv.text = str(int(command_variant))
    for child in list(body):
        body.remove(child)
    element = etree.SubElement(body, _sr("SignedPreCommand"))
    if execution is not None:
        etree.SubElement(element, _sr("ExecutionDateTime")).text = execution.astimezone(
            dt.UTC
        ).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    etree.SubElement(element, _sr("GBCSPayload")).text = base64.b64encode(signed).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def service_path(command_variant: CommandVariant) -> str:
    service = command_variant.info.web_service
    if service is None:
        raise DuisError(f"CV {int(command_variant)} has no web service")
    return service.path


# =================================================================================================
# Describing messages (also used by the tests)
# =================================================================================================


def _element_json(element: etree._Element) -> Any:
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return (element.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        name = etree.QName(child).localname
        value = _element_json(child)
        if name in out:
            if not isinstance(out[name], list):
                out[name] = [out[name]]
            out[name].append(value)
        else:
            out[name] = value
    return out


def _gbcs(raw: bytes) -> dict[str, Any]:
    from gbhil.gbcs.errors import GbcsError
    from gbhil.gbcs.message import inspect_message

    try:
        return inspect_message(raw).to_json()
    except GbcsError as exc:
        return {"error": str(exc)}


def describe(
    message: bytes,
    *,
    channel: str,
    dcc_certificate: x509.Certificate | None,
) -> dict[str, Any]:
    """One received message as JSON: kind, codes, IDs, signature check, decoded GBCS."""
    try:
        response = parse_response(message)
    except DuisError as exc:
        return {"channel": channel, "kind": "invalid", "error": str(exc)}
    signature = "unsigned"
    if response.signed:
        signature = "unverified"
        if dcc_certificate is not None:
            try:
                verify(
                    message,
                    certificate_resolver([dcc_certificate]),
                    at=response.header.response_date_time,
                )
                signature = "verified"
            except SignatureError as exc:
                signature = f"failed: {type(exc).__name__}"
    header = response.header
    out: dict[str, Any] = {
        "channel": channel,
        "responseCode": header.response_code,
        "requestId": None if header.request_id is None else str(header.request_id),
        "responseId": None if header.response_id is None else str(header.response_id),
        "responseDateTime": header.response_date_time.isoformat(),
        "signature": signature,
    }
    body = response.body
    if isinstance(body, ResponseMessage):
        out["kind"] = "acknowledgement" if response.is_acknowledgement else "response"
        out["serviceReferenceVariant"] = body.service_reference_variant
        if body.gbcs_payload is not None:
            out["gbcs"] = _gbcs(body.gbcs_payload)
        if body.local_command is not None:
            out["localCommand"] = _gbcs(body.local_command)
        if body.pre_command is not None:
            out["preCommand"] = {
                "gbcsVersion": body.pre_command.gbcs_version,
                "payload": base64.b64encode(body.pre_command.gbcs_payload).decode(),
            }
        if body.other is not None:
            out[etree.QName(body.other).localname] = _element_json(body.other)
    elif isinstance(body, DeviceAlertMessage):
        out["kind"] = "deviceAlert"
        out["alertCode"] = f"{body.alert_code:04X}"
        out["throttled"] = [body.throttled_alert_sequence_id, body.throttled_alert_count]
        out["gbcs"] = _gbcs(body.gbcs_payload)
    elif isinstance(body, DCCAlertMessage):
        out["kind"] = "dccAlert"
        out["dccAlertCode"] = body.dcc_alert_code
        out["throttled"] = [body.throttled_alert_sequence_id, body.throttled_alert_count]
        out["dccAlert"] = _element_json(
            response.to_element().find(f"{_sr('Body')}/{_sr('DCCAlertMessage')}/{_sr('DCCAlert')}")
        )
    return out


def _print_text(item: dict[str, Any]) -> None:
    what = (
        item.get("serviceReferenceVariant")
        or item.get("dccAlertCode")
        or item.get("alertCode")
        or ""
    )
    head = (
        f"{item['channel']:<5} {item.get('kind', '?'):<15} "
        f"{item.get('responseCode', '-'):<8} {what}"
    )
    print(head.rstrip())
    for key in ("requestId", "responseId", "signature"):
        if item.get(key):
            print(f"      {key}: {item[key]}")
    for key in (
        "gbcs",
        "localCommand",
        "preCommand",
        "dccAlert",
        "DSPInventory",
        "DSPWANMatrix",
        "error",
    ):
        if key in item:
            text = json.dumps(item[key], indent=2, default=str)
            print(f"      {key}:")
            print("\n".join("        " + line for line in text.splitlines()))


# =================================================================================================
# gbhil duis send
# =================================================================================================


@dataclass(slots=True)
class _Credentials:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    ds_key: ec.EllipticCurvePrivateKey | None = None


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        key = serialization.load_der_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def _credentials(args: argparse.Namespace, user_id: str, info: dict[str, Any]) -> _Credentials:
    ds_key = _load_key(args.ds_key) if args.ds_key else None
    if args.key and args.cert:
        cert = x509.load_pem_x509_certificate(args.cert.read_bytes())
        return _Credentials(cert, _load_key(args.key), ds_key)
    stem = user_id.replace("-", "")
    if args.zaz1:
        from gbhil.smki import KeyStore

        root: Path = args.zaz1
        store = (
            KeyStore.from_zaz1_json(root / "keystore.json")
            if (root / "keystore.json").is_file()
            else KeyStore.from_orgkeys_folder(
                root / "orgkeys" if (root / "orgkeys").is_dir() else root
            )
        )
        cert, key = store.certificate(stem, "xml-ds"), store.private_key(stem, "xml-ds")
        if cert is None or not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"no ZAZ1 XML-signing key for {user_id}")
        found_ds = store.private_key(stem, "ds")
        if ds_key is None and isinstance(found_ds, ec.EllipticCurvePrivateKey):
            ds_key = found_ds
        return _Credentials(cert, key, ds_key)
    folder = args.credentials or (
        Path(info["credentialsDir"]) if info.get("credentialsDir") else None
    )
    if folder is None:
        raise ValueError("no keys: give --key/--cert, --zaz1 or --credentials")
    lower = stem.lower()
    cert = x509.load_pem_x509_certificate((folder / f"{lower}-xml-ds.pem").read_bytes())
    key = _load_key(folder / f"{lower}-xml-ds.key")
    ds_path = folder / f"{lower}-ds.key"
    if ds_key is None and ds_path.is_file():
        ds_key = _load_key(ds_path)
    return _Credentials(cert, key, ds_key)


async def _send(args: argparse.Namespace) -> int:
    import aiohttp

    from gbhil.dcc.endpoint import ReceiveEndpoint, client_ssl_context

    emit: Callable[[dict[str, Any]], None] = (
        (lambda item: print(json.dumps(item, default=str), flush=True))
        if args.json
        else _print_text
    )
    original = args.file.read_bytes()
    base = args.url.rstrip("/")
    ssl_context = (
        client_ssl_context(args.ca, args.client_cert, args.client_key) if args.ca else None
    )
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    receiver = ReceiveEndpoint(host=args.receive_host, port=args.receive_port)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        info: dict[str, Any] = {}
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with session.get(f"{base}/gbhil/info", ssl=ssl_context) as reply:
                if reply.status == 200:
                    info = await reply.json()
        counter = None if args.preserve_counter else time.time_ns() // 1_000_000
        try:
            unsigned = prepare_request(original, user=args.user, counter=counter)
        except DuisError as exc:
            print(f"gbhil: {args.file}: {exc}", file=sys.stderr)
            return EXIT_TRANSPORT
        rid = request_id_of(unsigned)
        try:
            creds = _credentials(args, rid.originator, info)
        except (OSError, ValueError, KeyError) as exc:
            print(f"gbhil: {exc}", file=sys.stderr)
            return EXIT_TRANSPORT
        dcc_cert = (
            x509.load_pem_x509_certificate(args.dcc_cert.read_bytes())
            if args.dcc_cert
            else x509.load_pem_x509_certificate(info["dcc"]["certificate"].encode())
            if info.get("dcc")
            else None
        )
        previous_url: str | None = None
        registered = False
        await receiver.start()
        try:
            if not args.no_register and info:
                previous_url = next(
                    (
                        u.get("receiveUrl")
                        for u in info.get("users", [])
                        if u.get("id") == rid.originator
                    ),
                    None,
                )
                async with session.put(
                    f"{base}/gbhil/users/{rid.originator}",
                    json={"receiveUrl": receiver.url},
                    ssl=ssl_context,
                ) as reply:
                    registered = reply.status == 200

            async def post(xml: bytes) -> dict[str, Any] | None:
                cv = command_variant_of(xml)
                url = base + service_path(cv)
                body = sign(xml, creds.key, creds.certificate)
                async with session.post(
                    url, data=body, ssl=ssl_context, headers={"Content-Type": "application/xml"}
                ) as reply:
                    payload = await reply.read()
                    if reply.status == 429:
                        print(
                            f"gbhil: HTTP 429, retry after {reply.headers.get('Retry-After')} s",
                            file=sys.stderr,
                        )
                        return None
                    if reply.status != 200:
                        print(f"gbhil: HTTP {reply.status}: {payload[:200]!r}", file=sys.stderr)
                        return None
                item = describe(payload, channel="sync", dcc_certificate=dcc_cert)
                emit(item)
                return item

            answer = await post(unsigned)
            if answer is None:
                return EXIT_TRANSPORT
            if answer.get("preCommand") and creds.ds_key is not None:
                pre = base64.b64decode(answer["preCommand"]["payload"])
                signed = sign_pre_command(pre, creds.ds_key)
                answer = await post(signed_pre_command_request(unsigned, signed))
                if answer is None:
                    return EXIT_TRANSPORT
            expects_async = answer.get("responseCode") == "I99" or (
                answer.get("kind") == "response"
                and answer.get("localCommand") is not None
                and command_variant_of(unsigned)
                in (
                    CommandVariant.SEND_AND_RETURN_FOR_LOCAL_DELIVERY,
                    CommandVariant.SEND_AND_RETURN_SIGNED_FOR_LOCAL_DELIVERY,
                )
            )
            expects_async = (
                expects_async and service_path(command_variant_of(unsigned)) != "/api/v1/serviceD"
            )
            return await _collect(
                receiver, rid, emit, dcc_cert, expects_async, args.timeout, args.linger
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            print(f"gbhil: transport failure: {exc}", file=sys.stderr)
            return EXIT_TRANSPORT
        finally:
            if registered:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with session.put(
                        f"{base}/gbhil/users/{rid.originator}",
                        json={"receiveUrl": previous_url},
                        ssl=ssl_context,
                    ):
                        pass
            await receiver.stop()


async def _collect(
    receiver: Any,
    rid: RequestID,
    emit: Callable[[dict[str, Any]], None],
    dcc_cert: x509.Certificate | None,
    expects_async: bool,
    timeout: float,
    linger: float,
) -> int:
    """Print what arrives: until the answer to ``rid`` (if one is due), then alerts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (timeout if expects_async else linger)
    answered = not expects_async
    seen = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        if not await receiver.wait_for(lambda messages, n=seen: len(messages) > n, remaining):
            break
        message = receiver.messages[seen]
        seen += 1
        item = describe(message, channel="async", dcc_certificate=dcc_cert)
        emit(item)
        if not answered and item.get("requestId") == str(rid):
            answered = True
            deadline = loop.time() + linger
    return EXIT_OK if answered else EXIT_TIMEOUT


def cmd_duis_send(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"gbhil: {args.file} is not a file", file=sys.stderr)
        return EXIT_TRANSPORT
    return asyncio.run(_send(args))


# =================================================================================================
# gbhil serve
# =================================================================================================


@dataclass(slots=True)
class ServeSettings:
    """``gbhil serve`` options after merging the rig file's ``[pki]`` and the options."""

    seed: int | None = 1
    zaz1: Path | None = None
    pki_folder: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8079
    smki_port: int = 8083
    db: Path | None = None
    tls: bool = False
    capacity: int | None = None
    receive_urls: dict[str, str] = field(default_factory=dict)


def load_settings(args: argparse.Namespace) -> ServeSettings:
    """The rig file (gbhil.rigs.rigfile: its ``[pki]`` decides seed, ZAZ1 or a key folder;
    a rig file that is not the embedded rig is built by gbhil.rigs.build) overridden by
    the options."""
    settings = ServeSettings()
    if args.rig is not None:
        from gbhil.rigs.rigfile import PkiSource, load_rig

        pki = load_rig(args.rig).pki
        if pki.source is PkiSource.GENERATED:
            settings.seed = pki.seed
        elif pki.source is PkiSource.ZAZ1 and pki.path:
            settings.zaz1 = Path(pki.path)
        elif pki.path:
            settings.pki_folder = Path(pki.path)
    for name in ("seed", "zaz1", "host", "port", "smki_port", "db", "capacity"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(settings, name, value)
    settings.tls = bool(args.tls)
    for item in args.receive_url:
        user, _, url = item.partition("=")
        if not url:
            raise ValueError(f"--receive-url wants USER=URL, got {item!r}")
        settings.receive_urls[user] = url
    return settings


def _write_gbcs_keys(folder: Path, keystore: Any, user_ids: list[str]) -> None:
    """The Users' GBCS signing keys (for signing pre-commands), RTDS naming."""
    for user_id in user_ids:
        key = keystore.ds_private(user_id)
        cert = keystore.certificate(user_id, "ds")
        if key is None or cert is None:
            continue
        stem = user_id.replace("-", "").lower()
        (folder / f"{stem}-ds.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(folder / f"{stem}-ds.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)


def _gbcs_key(folder: Path, user_id: str) -> dict[str, str]:
    path = folder / f"{user_id.replace('-', '').lower()}-ds.key"
    return {"gbcsKey": str(path)} if path.is_file() else {}


def _serve_rig(rig_file: Path | None, seed: int | None, keystore: Any) -> Any:
    """The rig of a rig file that is not the embedded rig (an MQTT bus, EZSP radios),
    built by gbhil.rigs.build on the wall clock; None for the embedded rig."""
    if rig_file is None:
        return None
    from gbhil.rigs.build import RigKind, build_rig, rig_kind
    from gbhil.rigs.rigfile import load_rig

    if rig_kind(load_rig(rig_file)) is RigKind.EMBEDDED:
        return None
    if keystore is not None:
        raise ValueError("--zaz1 and key folders work with the embedded rig only")
    return build_rig(rig_file, seed=seed, start=dt.datetime.now(dt.UTC))


def cmd_serve(args: argparse.Namespace) -> int:
    from gbhil.dcc.emulator import (
        EmulatorConfig,
        TlsFiles,
        build_rig,
        default_emulator,
        zaz1_keystore,
    )
    from gbhil.dcc.endpoint import generate_dccki
    from gbhil.dcc.users import UserDirectory
    from gbhil.smki import KeyStore

    try:
        settings = load_settings(args)
        keystore = (
            zaz1_keystore(settings.zaz1, seed=settings.seed)
            if settings.zaz1
            else KeyStore.load(settings.pki_folder)
            if settings.pki_folder
            else None
        )
    except Exception as exc:  # rig file, key store: report any problem and stop
        print(f"gbhil: {exc}", file=sys.stderr)
        return 2
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="gbhil-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rig = _serve_rig(args.rig, settings.seed, keystore) or build_rig(
            real_time=True, seed=settings.seed, keystore=keystore
        )
    except Exception as exc:  # broker down, device host failed, rig no builder can make
        print(f"gbhil: cannot build the rig: {exc}", file=sys.stderr)
        return 2
    try:
        rig.run(rig.start())
        users = UserDirectory.from_keystore(
            rig.keystore,
            capacity_per_minute=settings.capacity,
            issue_missing=True,
            seed=settings.seed,
        )
        for who, url in settings.receive_urls.items():
            users.update(users[who].user_id, receive_url=url)
        credentials = users.write_credentials(work / "users")
        _write_gbcs_keys(work / "users", rig.keystore, [u.user_id for u in users])
        tls = None
        if settings.tls:
            dccki = generate_dccki(
                work / "dccki", [u.user_id for u in users], hosts=("localhost", settings.host)
            )
            client = dccki.clients["dcc"]
            tls = TlsFiles(
                str(dccki.server_certificate),
                str(dccki.server_key),
                str(dccki.ca_certificate),
                str(client[0]),
                str(client[1]),
            )
        db = str(settings.db) if settings.db else ":memory:"
        config = EmulatorConfig(
            host=settings.host,
            duis_port=settings.port,
            smki_port=settings.smki_port,
            tls=tls,
            store_path=db,
            credentials_dir=str(work / "users"),
        )
        emulator = default_emulator(rig, users=users, config=config, db_path=db)
        rig.run(emulator.start())
    except (OSError, ValueError, KeyError) as exc:
        print(f"gbhil: cannot start: {exc}", file=sys.stderr)
        rig.close()
        return 2
    ready = {
        "duis": emulator.duis_url,
        "services": {
            cv: f"{emulator.duis_url}{p}"
            for cv, p in (
                ("serviceS", "/api/v1/serviceS"),
                ("serviceD", "/api/v1/serviceD"),
                ("serviceT", "/api/v1/serviceT"),
            )
        },
        "smki": emulator.smki_url,
        "dcc": {"id": users.dcc.eui, "certificate": credentials["dcc"]["certificate"]},
        "users": [
            {
                **summary,
                **credentials.get(str(summary["id"]), {}),
                **_gbcs_key(work / "users", str(summary["id"])),
            }
            for summary in users.summary()
        ],
        "workDir": str(work),
        "tls": None
        if tls is None
        else {
            "ca": tls.ca,
            "clients": {
                k: {"certificate": str(v[0]), "key": str(v[1])} for k, v in dccki.clients.items()
            },
        },
        "clock": "real-time",
    }
    print(json.dumps(ready), flush=True)

    async def wait_for_signal() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        rig.run(wait_for_signal())
    except KeyboardInterrupt:
        pass
    finally:
        rig.run(emulator.stop())
        rig.close()
    return 0
