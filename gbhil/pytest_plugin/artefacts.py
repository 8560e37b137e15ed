"""Per-test artefacts: the HAN capture slice, the DUIS/GBCS transcript, device event logs.

pytest-embedded's lesson: a failing HIL test is only debuggable if what each party saw
during *that* test sits next to the verdict. Every test that uses the rig gets a folder
under ``<report>/artefacts/`` holding:

* ``han.pcap``: every HAN transmission during the test (linktype 283, page + channel),
  written by a medium tap that exists only while the test runs;
* ``transcript.txt``: every DUIS and GBCS message sent and received, in virtual-time
  order, with the codec's decoded summary (:func:`gbhil.gbcs.message.inspect_message`);
* ``devices.log``: the devices' own event logs and the HAN nodes' events for the test.

The plugin attaches the paths to the JUnit XML (test properties) and the HTML report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.message import alert_code_of, inspect_message
from gbhil.gbcs.security import SecurityContext
from gbhil.han.pcap import PcapWriter
from gbhil.han.transport import CapturedFrame
from gbhil.pytest_plugin.report import PROPERTY_PREFIX

#: Artefact names (file names in the test's folder, property names in the JUnit XML).
HAN_PCAP = "han.pcap"
TRANSCRIPT = "transcript.txt"
DEVICE_LOG = "devices.log"
#: Longest folder name derived from a test id (file systems cap names at 255 octets).
MAX_FOLDER_NAME = 120

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class Channel:
    """Where a transcript entry travelled (constants, so readers can filter)."""

    DUIS = "DUIS"
    WAN = "GBCS/WAN"
    HHT = "GBCS/HHT"
    PSU = "PSU"
    NOTE = "NOTE"


def folder_name(nodeid: str) -> str:
    """A file-system-safe, readable folder name for a test id."""
    name = nodeid.replace(".py::", "::").replace("::", ".").replace("/", ".")
    name = _UNSAFE.sub("_", name).strip("._")
    return name[:MAX_FOLDER_NAME] or "test"


def gbcs_summary(raw: bytes, ctx: SecurityContext | None = None) -> tuple[str, dict[str, Any]]:
    """One line and the codec's JSON view of a GBCS message; never raises (logs must not)."""
    try:
        inspection = inspect_message(raw, ctx)
    except GbcsError as exc:
        return f"undecodable GBCS ({len(raw)} octets): {exc}", {}
    except Exception as exc:  # a message that breaks the decoder must still be logged
        return f"GBCS that breaks the decoder ({len(raw)} octets): {exc!r}", {}
    view = inspection.to_json()
    h = view.get("header", {})
    line = (
        f"{h.get('craFlag')} {h.get('messageCode')} {h.get('useCaseTitle') or h.get('useCase')}"
        f" {h.get('businessOriginatorId')} -> {h.get('businessTargetId')}"
        f" #{h.get('originatorCounter')} MAC {inspection.mac.value}"
        f" sig {inspection.signature.value}"
    )
    code = alert_code_of(inspection.message)
    if code is not None:
        line += f" alert 0x{code:04X}"
    return line, view


@dataclass(slots=True)
class TranscriptEntry:
    """One message (or event) of the transcript."""

    at: datetime
    channel: str
    direction: str
    title: str
    raw: bytes | str | None = None
    detail: dict[str, Any] | None = None

    def render(self) -> str:
        head = f"[{self.at.isoformat()}] {self.channel:<8} {self.direction:<20} {self.title}"
        lines = [head]
        if isinstance(self.raw, bytes):
            lines.append(f"    hex: {self.raw.hex().upper()}")
        elif isinstance(self.raw, str):
            lines.extend(f"    {line}" for line in self.raw.splitlines())
        if self.detail:
            text = json.dumps(self.detail, indent=2, default=str, sort_keys=False)
            lines.extend(f"    {line}" for line in text.splitlines())
        return "\n".join(lines)


@dataclass(slots=True)
class Transcript:
    """Everything the DCC side sent and received during one test, oldest first."""

    now: Callable[[], datetime]
    security: SecurityContext | None = None
    entries: list[TranscriptEntry] = field(default_factory=list)

    def duis(self, direction: str, title: str, xml: bytes | str) -> None:
        text = xml.decode("utf-8", "replace") if isinstance(xml, bytes) else xml
        self.entries.append(TranscriptEntry(self.now(), Channel.DUIS, direction, title, text))

    def gbcs(self, channel: str, direction: str, raw: bytes) -> None:
        line, view = gbcs_summary(raw, self.security)
        self.entries.append(TranscriptEntry(self.now(), channel, direction, line, raw, view))

    def note(self, channel: str, text: str) -> None:
        self.entries.append(TranscriptEntry(self.now(), channel, "", text))

    def render(self) -> str:
        if not self.entries:
            return "(no DUIS or GBCS traffic in this test)\n"
        return "\n\n".join(e.render() for e in self.entries) + "\n"


@dataclass(frozen=True, slots=True)
class LogLine:
    """One device or node event, on the shared clock."""

    at: datetime
    source: str
    kind: str
    detail: str

    def render(self) -> str:
        return f"{self.at.isoformat()}  {self.source:<10} {self.kind:<24} {self.detail}"


def device_log_lines(rig: Any, since: datetime) -> list[LogLine]:
    """The devices' event logs and the HAN nodes' events from ``since`` on, time-ordered.

    Works on any rig with the simulated rig's shape (``devices()``, ``hub``, ``nodes``,
    ``hht``); parts a rig lacks are left out rather than failing the test's teardown.
    """
    lines: list[LogLine] = []
    devices = rig.devices() if hasattr(rig, "devices") else {}
    for name, device in devices.items():
        for event in list(getattr(device, "events", ())):
            if event.at >= since:
                detail = event.detail
                if event.counter is not None:
                    detail += f" (counter {event.counter})"
                lines.append(LogLine(event.at, name, event.kind, detail))
    clock = rig.clock
    start = clock.to_monotonic(since)
    nodes: list[tuple[str, Any]] = [("hub", getattr(rig, "hub", None))]
    nodes += [(f"{name}-node", node) for name, node in getattr(rig, "nodes", {}).items()]
    nodes.append(("hht-node", getattr(rig, "hht", None)))
    for name, node in nodes:
        for event in list(getattr(node, "events", ())):
            if event.at >= start:
                peer = f" peer {event.peer.hex().upper()}" if event.peer else ""
                lines.append(
                    LogLine(clock.to_datetime(event.at), name, event.kind, event.detail + peer)
                )
    lines.sort(key=lambda line: line.at)
    return lines


class TestArtefacts:
    """The artefacts of one test: start when the test starts, :meth:`finish` at teardown."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, folder: Path, rig: Any, security: SecurityContext | None) -> None:
        self.folder = folder
        self.rig = rig
        self.started_at: datetime = rig.clock.now()
        self.started_monotonic: float = rig.clock.monotonic()
        self.transcript = Transcript(rig.clock.now, security)
        #: Every HAN transmission seen during the test (the ``han`` fixture shows it).
        self.frames: list[CapturedFrame] = []
        self._pcap: PcapWriter | None = None
        self._remove_tap: Callable[[], None] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        medium = getattr(self.rig, "medium", None)
        if medium is not None and hasattr(medium, "add_tap"):
            self._pcap = PcapWriter(self.folder / HAN_PCAP)
            self._remove_tap = medium.add_tap(self._tap)

    def _tap(self, frame: CapturedFrame) -> None:
        self.frames.append(frame)
        if self._pcap is not None and not self._pcap.closed:
            self._pcap.write_frame(frame.frame, frame.timestamp, frame.page, frame.channel)

    @property
    def virtual_seconds(self) -> float:
        return self.rig.clock.monotonic() - self.started_monotonic

    def finish(self) -> dict[str, Path]:
        """Stop capturing, write the files; returns artefact name -> path."""
        if self._remove_tap is not None:
            self._remove_tap()
            self._remove_tap = None
        out: dict[str, Path] = {}
        if self._pcap is not None:
            self._pcap.close()
            out[HAN_PCAP] = self.folder / HAN_PCAP
        transcript = self.folder / TRANSCRIPT
        transcript.write_text(self.transcript.render(), encoding="utf-8")
        out[TRANSCRIPT] = transcript
        log = self.folder / DEVICE_LOG
        lines = device_log_lines(self.rig, self.started_at)
        body = "\n".join(line.render() for line in lines)
        log.write_text((body or "(no device events in this test)") + "\n", encoding="utf-8")
        out[DEVICE_LOG] = log
        return out


def display_path(path: Path, base: Path | None = None) -> str:
    """``path`` relative to ``base`` (default: the working directory) when inside it."""
    base = (base or Path.cwd()).resolve()
    resolved = path.resolve()
    try:
        return resolved.relative_to(base).as_posix()
    except ValueError:
        return resolved.as_posix()


def artefact_properties(artefacts: dict[str, Path]) -> Iterable[tuple[str, str]]:
    """JUnit properties naming each artefact's file."""
    for name, path in artefacts.items():
        yield f"{PROPERTY_PREFIX}{name}", display_path(path)
