"""docs/gbcs.md cannot rot: its Python examples run, and its figures match the corpus.

The ``python`` blocks run in document order in one shared namespace, with the
repository root as working directory (the doc's paths are relative to it).
Blocks whose first line is ``# needs ../shared`` read the RTDS data and are
skipped when it is absent; ``GBHIL_CONFORMANCE`` moves it, exactly as for the
other conformance tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from gbhil.corpus import format_report, verify_corpus
from gbhil.gbcs.security import SecurityContext
from gbhil.smki import KeyStore
from tests.conftest import CONFORMANCE, ROOT

DOC = ROOT / "docs" / "gbcs.md"
NEEDS_SHARED = "# needs ../shared"
DOC_CONFORMANCE = "../shared/conformance"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Block:
    line: int  # line of the opening fence, for error messages
    code: str
    needs_shared: bool


def python_blocks(text: str) -> list[Block]:
    return [
        Block(
            text.count("\n", 0, m.start()) + 1,
            m.group(1),
            m.group(1).lstrip().startswith(NEEDS_SHARED),
        )
        for m in _FENCE.finditer(text)
    ]


BLOCKS = python_blocks(DOC.read_text(encoding="utf-8"))


def _run(blocks: list[Block], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {"__name__": "docs_gbcs"}
    for b in blocks:
        code = b.code
        if b.needs_shared:
            code = code.replace(DOC_CONFORMANCE, CONFORMANCE.as_posix())
        # Pad so that tracebacks point at the line in docs/gbcs.md itself.
        exec(compile("\n" * b.line + code, str(DOC), "exec"), namespace)


def test_doc_has_examples_of_both_kinds() -> None:
    assert len(BLOCKS) >= 10
    assert any(b.needs_shared for b in BLOCKS)
    assert sum(not b.needs_shared for b in BLOCKS) >= 8
    for b in BLOCKS:
        # The marker only counts on the first line; elsewhere it would be ignored.
        assert NEEDS_SHARED not in b.code or b.needs_shared, f"docs/gbcs.md:{b.line}"


def test_examples_run_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    have_shared = CONFORMANCE.is_dir()
    _run([b for b in BLOCKS if have_shared or not b.needs_shared], monkeypatch)
    if not have_shared:
        pytest.skip(f"ran only the self-contained examples: {CONFORMANCE} not found")


def test_self_contained_examples_need_no_shared_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unmarked blocks must not lean on names defined by the ``needs ../shared`` ones."""
    _run([b for b in BLOCKS if not b.needs_shared], monkeypatch)


def test_verify_corpus_table_is_current(rtds_dir: Path, rtds_keystore_dir: Path) -> None:
    report = verify_corpus(rtds_dir, SecurityContext(KeyStore.from_rtds_folder(rtds_keystore_dir)))
    text = DOC.read_text(encoding="utf-8")
    for line in format_report(report).splitlines():
        if line.strip():
            assert line in text, f"docs/gbcs.md lacks the current verify-corpus line {line!r}"
