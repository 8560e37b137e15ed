"""Mutation fuzzing of the GBCS decoders with RTDS messages as seeds.

Each mutant (bit flips, byte overwrites, truncation, insertion, deletion,
length-field tampering) goes through the full decode + verify path.  The only
acceptable outcomes are a decoded message or a GbcsError naming a field and
an offset inside the input; anything else is a bug and is printed.
Run: .venv/bin/python benchmarks/gbcs_fuzz.py [--count N] [--seed S]
"""

from __future__ import annotations

import argparse
import collections
import random
import time
import traceback

from _data import rtds_messages

from gbhil.gbcs.errors import GbcsDecodeError, GbcsError
from gbhil.gbcs.message import inspect_message
from gbhil.gbcs.security import Check, SecurityContext
from gbhil.smki import KeyStore


def mutate(rng: random.Random, raw: bytes) -> bytes:
    b = bytearray(raw)
    op = rng.randrange(6)
    if op == 0:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 2:
        del b[rng.randrange(len(b)) :]
    elif op == 3:
        i = rng.randrange(len(b) + 1)
        b[i:i] = rng.randbytes(rng.randint(1, 8))
    elif op == 4:
        i = rng.randrange(len(b))
        del b[i : i + rng.randint(1, 8)]
    else:
        # length-like bytes: set a byte to a boundary value
        b[rng.randrange(len(b))] = rng.choice((0x00, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0xFF))
    return bytes(b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    _, keys, msgs = rtds_messages()
    ctx = SecurityContext(KeyStore.from_rtds_folder(keys))
    rng = random.Random(args.seed)
    outcome: collections.Counter[str] = collections.Counter()
    fields: collections.Counter[str] = collections.Counter()
    crashes = 0
    start = time.perf_counter()
    for _ in range(args.count):
        _, cat, raw = rng.choice(msgs)
        mutant = mutate(rng, raw)
        if mutant == raw:
            outcome["unchanged"] += 1
            continue
        try:
            ins = inspect_message(mutant, ctx, precommand=cat == "PRECOMMAND")
        except GbcsDecodeError as exc:
            if not 0 <= exc.offset <= len(mutant):
                crashes += 1
                print(f"offset {exc.offset} outside input of {len(mutant)} bytes: {exc}")
            outcome["rejected: decode error"] += 1
            fields[exc.field] += 1
            continue
        except GbcsError as exc:
            # Decoding succeeded but a later step refused: the decoder accepted
            # something the encoder cannot produce. Report it like a crash.
            crashes += 1
            outcome["INCONSISTENT (other codec error)"] += 1
            print(f"{type(exc).__name__}: {exc} on {mutant.hex()}")
            continue
        except Exception:  # what the fuzzer hunts for
            crashes += 1
            outcome["CRASH"] += 1
            print(f"crash on {mutant.hex()}")
            traceback.print_exc()
            continue
        still_ok = ins.mac is Check.VERIFIED or (
            ins.mac is Check.ABSENT and ins.signature is Check.VERIFIED
        )
        if still_ok:
            # Every byte of a MACed or signed message is covered: this would be a hole.
            crashes += 1
            outcome["ACCEPTED FORGERY"] += 1
            print(f"mutant still verifies: {mutant.hex()}")
        elif ins.mac is Check.FAILED or ins.signature is Check.FAILED:
            outcome["decoded, MAC/signature fails"] += 1
        else:
            outcome["decoded, not checkable"] += 1
    elapsed = time.perf_counter() - start
    print(
        f"{args.count:,} mutants of {len(msgs)} RTDS messages in {elapsed:.1f} s (seed {args.seed})"
    )
    for k, v in outcome.most_common():
        print(f"  {k:<34} {v:>8,}")
    print("most frequent rejecting fields:")
    for k, v in fields.most_common(8):
        print(f"  {k:<34} {v:>8,}")
    print(f"problems (crashes, bad offsets, accepted mutants): {crashes}")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
