"""Walk a folder of GBCS messages (RTDS layout) and check every one.

Used by ``gbhil gbcs verify-corpus``, the conformance tests and the benchmark,
so all three count the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gbhil.gbcs.errors import GbcsDecodeError, GbcsError
from gbhil.gbcs.message import inspect_message
from gbhil.gbcs.security import Check, SecurityContext

CATEGORIES = ("COMMAND", "PRECOMMAND", "RESPONSE", "ALERT")
COUNTERS = (
    "files",
    "decoded",
    "mac_verified",
    "mac_failed",
    "mac_not_checkable",
    "signature_verified",
    "signature_failed",
    "signature_not_checkable",
    "payloads_encrypted",
    "payloads_decrypted",
    "reencoded_exact",
    "utrn_valid",
    "utrn_invalid",
)


def category_of(path: Path) -> str:
    """RTDS names end ``_<KIND>[_suffix]_GBCS.HEX``; PRECOMMAND must win over COMMAND."""
    parts = path.name.upper().split("_")
    for kind in ("PRECOMMAND", "COMMAND", "RESPONSE", "ALERT"):
        if kind in parts:
            return kind
    return "OTHER"


def read_message_file(path: Path) -> bytes:
    """One message per file, as hex (RTDS) or raw bytes."""
    data = path.read_bytes()
    text = data.strip()
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return data


@dataclass(slots=True)
class Failure:
    file: str
    field: str
    reason: str


@dataclass(slots=True)
class CorpusReport:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    def bump(self, category: str, counter: str) -> None:
        self.counts.setdefault(category, dict.fromkeys(COUNTERS, 0))[counter] += 1

    @property
    def ok(self) -> bool:
        return not self.failures

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(COUNTERS, 0)
        for c in self.counts.values():
            for k, v in c.items():
                out[k] += v
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "categories": self.counts,
            "total": self.totals(),
            "failures": [
                {"file": f.file, "field": f.field, "reason": f.reason} for f in self.failures
            ],
        }


def message_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.upper() == ".HEX")


def check_message(
    report: CorpusReport, name: str, category: str, raw: bytes, ctx: SecurityContext
) -> None:
    """Decode, verify, decrypt and re-encode one message, counting into ``report``."""
    report.bump(category, "files")
    try:
        ins = inspect_message(raw, ctx, precommand=category == "PRECOMMAND")
    except GbcsDecodeError as exc:
        report.failures.append(Failure(name, exc.field, f"decode: {exc}"))
        return
    except GbcsError as exc:
        report.failures.append(Failure(name, "message", f"decode: {exc}"))
        return
    report.bump(category, "decoded")
    for what, check in (("mac", ins.mac), ("signature", ins.signature)):
        if check is Check.VERIFIED:
            report.bump(category, f"{what}_verified")
        elif check is Check.FAILED:
            report.bump(category, f"{what}_failed")
            report.failures.append(Failure(name, what, f"{what} does not verify"))
        elif check is Check.NOT_CHECKABLE:
            report.bump(category, f"{what}_not_checkable")
    for i, d in enumerate(ins.decryptions):
        report.bump(category, "payloads_encrypted")
        if d.ok:
            report.bump(category, "payloads_decrypted")
        else:
            report.failures.append(Failure(name, f"encrypted block {i}", d.reason))
    if ins.utrn is not None:
        # An invalid UTRN is test data (RTDS has a deliberate one), not a codec failure.
        report.bump(category, "utrn_valid" if ins.utrn.ok else "utrn_invalid")
    try:
        again = ins.message.encode()
    except GbcsError as exc:
        report.failures.append(Failure(name, "re-encode", str(exc)))
        return
    if again == raw:
        report.bump(category, "reencoded_exact")
    else:
        at = next((i for i, (a, b) in enumerate(zip(again, raw, strict=False)) if a != b), None)
        at = min(len(again), len(raw)) if at is None else at
        report.failures.append(Failure(name, "re-encode", f"first differing byte at offset {at}"))


def verify_corpus(
    root: Path, ctx: SecurityContext, files: Iterable[Path] | None = None
) -> CorpusReport:
    report = CorpusReport()
    for path in files if files is not None else message_files(root):
        name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        try:
            raw = read_message_file(path)
        except OSError as exc:
            report.failures.append(Failure(name, "file", str(exc)))
            continue
        check_message(report, name, category_of(path), raw, ctx)
    return report


def format_report(report: CorpusReport) -> str:
    """Plain-text table, one row per category."""
    cols = (
        ("files", "files"),
        ("decoded", "decoded"),
        ("mac_verified", "MAC ok"),
        ("mac_failed", "MAC fail"),
        ("mac_not_checkable", "MAC n/c"),
        ("signature_verified", "sig ok"),
        ("signature_failed", "sig fail"),
        ("signature_not_checkable", "sig n/c"),
        ("payloads_encrypted", "encrypted"),
        ("payloads_decrypted", "decrypted"),
        ("reencoded_exact", "re-encoded"),
        ("utrn_valid", "UTRN ok"),
        ("utrn_invalid", "UTRN bad"),
    )
    head = f"{'category':<11}" + "".join(f"{t:>11}" for _, t in cols)
    lines = [head]
    rows = [(c, report.counts[c]) for c in (*CATEGORIES, "OTHER") if c in report.counts]
    rows.append(("total", report.totals()))
    for name, counts in rows:
        lines.append(f"{name:<11}" + "".join(f"{counts[k]:>11}" for k, _ in cols))
    if report.failures:
        lines.append(f"\n{len(report.failures)} failure(s):")
        lines.extend(f"  {f.file}: {f.field}: {f.reason}" for f in report.failures)
    else:
        lines.append("\nno failures")
    return "\n".join(lines)
