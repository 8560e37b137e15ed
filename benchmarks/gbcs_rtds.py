"""Decode + verify throughput of the GBCS codec on the shared RTDS corpus.

Prints messages per second for: envelope only, full decode (payloads), and
full decode + MAC + signature + payload decryption (what verify-corpus does).
Run: .venv/bin/python benchmarks/gbcs_rtds.py [--seconds N]
"""

from __future__ import annotations

import argparse
import platform
import time

from _data import rtds_messages

from gbhil.gbcs.frame import decode_frame
from gbhil.gbcs.message import decode_message, inspect_message
from gbhil.gbcs.security import SecurityContext
from gbhil.smki import KeyStore


def rate(label: str, fn, msgs, seconds: float) -> float:  # type: ignore[no-untyped-def]
    n = 0
    start = time.perf_counter()
    while True:
        for _, cat, raw in msgs:
            fn(raw, cat)
        n += len(msgs)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    per_s = n / elapsed
    print(f"{label:<42} {per_s:>10,.0f} messages/s  ({n} messages in {elapsed:.2f} s)")
    return per_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    args = ap.parse_args()
    _, keys, msgs = rtds_messages()
    t0 = time.perf_counter()
    ctx = SecurityContext(KeyStore.from_rtds_folder(keys))
    t_load = time.perf_counter() - t0
    print(f"python {platform.python_version()} on {platform.machine()}, one process")
    print(f"corpus: {len(msgs)} RTDS messages; keystore loaded in {t_load * 1000:.0f} ms")

    def pre(cat: str) -> bool:
        return cat == "PRECOMMAND"

    for _, cat, raw in msgs:  # warm the ECDH cache once, as a long run would
        inspect_message(raw, ctx, precommand=pre(cat))
    rate(
        "envelope decode",
        lambda raw, cat: decode_frame(raw, precommand=pre(cat)),
        msgs,
        args.seconds,
    )
    rate(
        "full decode (payload fields)",
        lambda raw, cat: decode_message(raw, precommand=pre(cat)),
        msgs,
        args.seconds,
    )
    rate(
        "decode + MAC + signature + decryption",
        lambda raw, cat: inspect_message(raw, ctx, precommand=pre(cat)),
        msgs,
        args.seconds,
    )


if __name__ == "__main__":
    main()
