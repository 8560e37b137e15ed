"""The run's HTML report: one self-contained ``index.html``, written without dependencies.

pytest gives JUnit XML for CI dashboards; people want a page they can open: which tests
passed, how long each took in wall and virtual time, which use case and SRV each traces
to, the failure text, and links to each test's capture, transcript and device logs.
:class:`RunRecorder` turns pytest's setup/call/teardown reports into :class:`TestRecord`
rows; :func:`write_html` renders them.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the report writer stays importable without pytest's weight
    import pytest

#: JUnit property names the plugin writes (and this module reads back).
PROP_USECASE = "usecase"
PROP_SRV = "srv"
PROP_VIRTUAL_SECONDS = "virtual_seconds"
PROP_RIG = "rig"
INDEX = "index.html"
#: Folder of the per-test artefact folders, inside the report folder.
ARTEFACTS_DIR = "artefacts"
#: Prefix of artefact properties in the JUnit XML: ``artefact:han.pcap`` -> path.
PROPERTY_PREFIX = "artefact:"


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"


#: Report colours per outcome (background, text).
COLOURS: Mapping[Outcome, tuple[str, str]] = {
    Outcome.PASSED: ("#d8f3dc", "#1b4332"),
    Outcome.FAILED: ("#ffd6d6", "#7f1d1d"),
    Outcome.ERROR: ("#ffe0b3", "#7c2d12"),
    Outcome.SKIPPED: ("#e9ecef", "#343a40"),
    Outcome.XFAILED: ("#e9ecef", "#343a40"),
    Outcome.XPASSED: ("#fff3bf", "#5c4400"),
}


@dataclass(slots=True)
class TestRecord:
    """One test's row of the report."""

    __test__ = False

    nodeid: str
    outcome: Outcome = Outcome.PASSED
    wall_seconds: float = 0.0
    virtual_seconds: float | None = None
    usecases: list[str] = field(default_factory=list)
    srvs: list[str] = field(default_factory=list)
    #: artefact name -> file (as the plugin recorded it)
    artefacts: dict[str, Path] = field(default_factory=dict)
    #: failure text, or the skip reason
    text: str = ""


def format_virtual(seconds: float) -> str:
    """Virtual durations as ``0:04:02.500`` (a 4-minute outage reads like one)."""
    millis = round(seconds * 1000)
    whole, ms = divmod(millis, 1000)
    return f"{timedelta(seconds=whole)}.{ms:03d}"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")


class RunRecorder:
    """Folds pytest's per-phase reports into one :class:`TestRecord` per test."""

    def __init__(self) -> None:
        self.records: dict[str, TestRecord] = {}

    def add(self, report: pytest.TestReport) -> TestRecord:
        record = self.records.get(report.nodeid)
        if record is None:
            record = self.records[report.nodeid] = TestRecord(report.nodeid)
        record.wall_seconds += report.duration
        xfail = hasattr(report, "wasxfail")
        if report.when == "setup":
            if report.failed:
                record.outcome, record.text = Outcome.ERROR, report.longreprtext
            elif report.skipped:
                record.outcome = Outcome.XFAILED if xfail else Outcome.SKIPPED
                record.text = _skip_reason(report)
        elif report.when == "call":
            if report.passed:
                record.outcome = Outcome.XPASSED if xfail else Outcome.PASSED
            elif report.failed:
                record.outcome, record.text = Outcome.FAILED, report.longreprtext
            else:
                record.outcome = Outcome.XFAILED if xfail else Outcome.SKIPPED
                record.text = str(getattr(report, "wasxfail", "")) or _skip_reason(report)
        elif report.failed:  # teardown
            if record.outcome is Outcome.PASSED:
                record.outcome = Outcome.ERROR
            record.text = (record.text + "\n\nteardown:\n" + report.longreprtext).strip()
        if report.when == "teardown":
            self._properties(record, report.user_properties)
        return record

    @staticmethod
    def _properties(record: TestRecord, properties: Sequence[tuple[str, object]]) -> None:
        record.usecases, record.srvs = [], []
        for name, value in properties:
            if name == PROP_USECASE:
                record.usecases.append(str(value))
            elif name == PROP_SRV:
                record.srvs.append(str(value))
            elif name == PROP_VIRTUAL_SECONDS:
                record.virtual_seconds = float(str(value))
            elif name.startswith(PROPERTY_PREFIX):
                record.artefacts[name.removeprefix(PROPERTY_PREFIX)] = Path(str(value))

    def counts(self) -> Counter[Outcome]:
        return Counter(r.outcome for r in self.records.values())


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#212529}
h1{margin-bottom:.2em} table{border-collapse:collapse;width:100%;margin-top:1em}
th,td{border-bottom:1px solid #dee2e6;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f1f3f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;font-weight:600}
.meta td{border:none;padding:.1em .8em .1em 0} code{font-size:.95em}
pre{white-space:pre-wrap;background:#f8f9fa;padding:.6em;max-height:30em;overflow:auto}
"""


def _badge(outcome: Outcome) -> str:
    bg, fg = COLOURS[outcome]
    return f'<span class="badge" style="background:{bg};color:{fg}">{outcome.value}</span>'


def _link(target: Path, base: Path, label: str) -> str:
    href = Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(label)}</a>'


def render_html(
    records: Sequence[TestRecord],
    base: Path,
    *,
    title: str = "gbhil HIL report",
    meta: Mapping[str, str] | None = None,
    links: Mapping[str, Path] | None = None,
) -> str:
    """The page; artefact links are relative to ``base`` (the folder of ``index.html``)."""
    counts = Counter(r.outcome for r in records)
    summary = ", ".join(f"{counts[o]} {o.value}" for o in Outcome if counts[o]) or "no tests"
    virtual = sum(r.virtual_seconds or 0.0 for r in records)
    wall = sum(r.wall_seconds for r in records)
    rows_meta = dict(meta or {})
    rows_meta.setdefault("tests", f"{len(records)}: {summary}")
    rows_meta.setdefault("time", f"{wall:.2f} s wall, {format_virtual(virtual)} virtual")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<table class="meta">',
    ]
    parts += [
        f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>"
        for k, v in rows_meta.items()
    ]
    for label, target in (links or {}).items():
        link = _link(target, base, target.name)
        parts.append(f"<tr><td><b>{html.escape(label)}</b></td><td>{link}</td></tr>")
    parts.append("</table>")
    parts.append(
        "<table><tr><th>outcome</th><th>test</th><th>use case</th><th>SRV</th>"
        "<th>wall</th><th>virtual</th><th>artefacts</th></tr>"
    )
    for r in records:
        virtual_text = "" if r.virtual_seconds is None else format_virtual(r.virtual_seconds)
        artefacts = " ".join(_link(p, base, name) for name, p in r.artefacts.items())
        test = f"<code>{html.escape(r.nodeid)}</code>"
        if r.text:
            label = "reason" if r.outcome in (Outcome.SKIPPED, Outcome.XFAILED) else "failure"
            test += f"<details><summary>{label}</summary><pre>{html.escape(r.text)}</pre></details>"
        parts.append(
            f"<tr><td>{_badge(r.outcome)}</td><td>{test}</td>"
            f"<td>{html.escape(', '.join(r.usecases))}</td>"
            f"<td>{html.escape(', '.join(r.srvs))}</td>"
            f'<td class="num">{r.wall_seconds:.3f} s</td>'
            f'<td class="num">{html.escape(virtual_text)}</td><td>{artefacts}</td></tr>'
        )
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def write_html(
    folder: Path,
    records: Sequence[TestRecord],
    *,
    title: str = "gbhil HIL report",
    meta: Mapping[str, str] | None = None,
    links: Mapping[str, Path] | None = None,
) -> Path:
    """Write ``folder/index.html``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / INDEX
    target.write_text(
        render_html(records, folder, title=title, meta=meta, links=links), encoding="utf-8"
    )
    return target
