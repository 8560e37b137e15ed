"""Where the benchmarks find the shared conformance data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = Path(os.environ.get("GBHIL_CONFORMANCE", ROOT.parent / "shared" / "conformance"))


def rtds_messages() -> tuple[Path, Path, list[tuple[str, str, bytes]]]:
    """(corpus dir, keystore dir, [(name, category, raw bytes)]) or exit with a clear message."""
    from gbhil.corpus import category_of, message_files, read_message_file

    corpus = CONFORMANCE / "rtds-4.5.0"
    keys = CONFORMANCE / "rtds-keystore"
    if not corpus.is_dir() or not keys.is_dir():
        sys.exit(f"conformance data not found under {CONFORMANCE}; set GBHIL_CONFORMANCE")
    msgs = [(p.name, category_of(p), read_message_file(p)) for p in message_files(corpus)]
    return corpus, keys, msgs
