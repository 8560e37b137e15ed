"""RTDS corpus messages cut open by the project's envelope codec, for the payload tests."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gbhil.gbcs.frame import GeneralSigning, decode_frame
from gbhil.gbcs.message import PayloadFamily, content_offset, payload_family
from tests.conftest import rtds_files


@dataclass(frozen=True, slots=True)
class CorpusPayload:
    """One RTDS message: file name, General Signing APDU and the content's absolute offset."""

    name: str
    gs: GeneralSigning
    offset: int  # absolute offset of content[0] in the message (``base=`` of the decoders)

    @property
    def content(self) -> bytes:
        return self.gs.content


@cache
def _corpus(rtds_dir: Path) -> tuple[CorpusPayload, ...]:
    out = []
    for path in rtds_files(rtds_dir):
        raw = bytes.fromhex(path.read_text().strip())
        frame = decode_frame(raw)
        out.append(CorpusPayload(path.name, frame.gs, content_offset(raw, frame)))
    return tuple(out)


def corpus_payloads(rtds_dir: Path, family: PayloadFamily | None = None) -> list[CorpusPayload]:
    """Every RTDS message (sorted by path), or those whose content is of ``family``."""
    return [p for p in _corpus(rtds_dir) if family is None or payload_family(p.content) is family]
