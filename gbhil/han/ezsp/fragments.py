"""APS fragmentation as it crosses the EZSP link: splitting and reassembly.

Why: an EZSP frame holds one over-the-air APS frame (``LVBytes``: at most 255
octets, and an ASH DATA frame at most 256), while GBCS commands and responses
tunnelled to and from SMETS2 devices run to hundreds or thousands of octets.
EmberZNet leaves APS fragmentation to the host (its fragmentation library):
each fragment crosses the link as its own ``sendUnicast`` /
``incomingMessageHandler`` with ``EMBER_APS_OPTION_FRAGMENT`` set and the
fragment count (high byte) and index (low byte) in the APS frame's
``groupId``. The emulated NCP (:mod:`gbhil.han.ezsp.emulator`) and the hub's
:class:`~gbhil.han.ezsp.radio.EzspRadio` both use this module, so the two ends
agree on the wire form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from gbhil.han.channels import HanError

#: Largest APS payload per fragment: the NCP's maximum buffer size (node descriptor).
FRAGMENT_PAYLOAD_MAX: Final = 82
#: groupId of a fragment: count in the high byte, index in the low byte.
FRAGMENT_INDEX_MASK: Final = 0xFF
FRAGMENT_COUNT_SHIFT: Final = 8
#: APS fragmentation counts fragments in one octet.
MAX_FRAGMENTS: Final = 0xFF
#: groupId high byte of a fragment acknowledgement (EmberZNet's host library).
FRAGMENT_ACK_COUNT: Final = 0xFF


class FragmentError(HanError):
    """A payload cannot be fragmented, or a fragment does not fit its message; says why."""


def split(payload: bytes, size: int = FRAGMENT_PAYLOAD_MAX) -> list[bytes]:
    """``payload`` as APS fragments of at most ``size`` octets (one when it fits)."""
    if size <= 0:
        raise FragmentError(f"fragment size must be positive, got {size}")
    if not payload:
        return [b""]
    parts = [payload[i : i + size] for i in range(0, len(payload), size)]
    if len(parts) > MAX_FRAGMENTS:
        raise FragmentError(
            f"a {len(payload)}-octet payload needs {len(parts)} fragments of {size} octets; "
            f"APS fragmentation allows {MAX_FRAGMENTS}"
        )
    return parts


def group_id(count: int, index: int) -> int:
    """The ``groupId`` a fragment carries."""
    if not 0 < count <= MAX_FRAGMENTS or not 0 <= index < count:
        raise FragmentError(f"fragment {index} of {count} is not a valid fragment")
    return count << FRAGMENT_COUNT_SHIFT | index


def count_and_index(group: int) -> tuple[int, int]:
    """``(count, index)`` of a fragment's ``groupId``."""
    return group >> FRAGMENT_COUNT_SHIFT & 0xFF, group & FRAGMENT_INDEX_MASK


def is_ack(group: int, payload: bytes) -> bool:
    """Whether a FRAGMENT-flagged frame is a fragment acknowledgement (no data)."""
    return not payload and group >> FRAGMENT_COUNT_SHIFT == FRAGMENT_ACK_COUNT


#: What identifies one fragmented message: (sender, APS counter, profile, cluster).
MessageKey = tuple[object, int, int, int]


@dataclass(slots=True)
class _Partial:
    count: int | None = None
    parts: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class Reassembler:
    """Collects the fragments of messages until each is complete.

    The count comes from fragment 0 (EmberZNet: "if the low-order byte is zero
    this is the first fragment and the high-order byte contains the number of
    fragments"); a repeated fragment (a retry) replaces nothing, except a new first
    fragment, which starts the message afresh (the APS counter of an abandoned message
    came round again: 256 messages later on a busy tunnel); an index past
    the count raises :class:`FragmentError` and drops the partial message, so
    a corrupted sequence never yields a payload.
    """

    _partial: dict[MessageKey, _Partial] = field(default_factory=dict)

    def add(self, key: MessageKey, group: int, payload: bytes) -> bytes | None:
        """Add one fragment; the whole payload once every fragment is in, else None."""
        count, index = count_and_index(group)
        partial = self._partial.setdefault(key, _Partial())
        if index == 0 and 0 in partial.parts:
            # A new first fragment under a key still holding one: the APS counter came
            # round again and the old message was abandoned. Never mix the two.
            partial = self._partial[key] = _Partial()
        if index == 0:
            if count == 0:
                del self._partial[key]
                raise FragmentError(f"first fragment (groupId 0x{group:04X}) gives no count")
            partial.count = count
        partial.parts.setdefault(index, payload)
        if partial.count is None:
            return None
        if max(partial.parts) >= partial.count:
            del self._partial[key]
            raise FragmentError(
                f"fragment {max(partial.parts)} of a message of {partial.count} fragments"
            )
        if len(partial.parts) < partial.count:
            return None
        del self._partial[key]
        return b"".join(partial.parts[i] for i in range(partial.count))

    def discard(self, key: MessageKey) -> None:
        """Forget a partial message (its sender gave up)."""
        self._partial.pop(key, None)

    @property
    def pending(self) -> int:
        """Messages waiting for fragments."""
        return len(self._partial)


__all__ = [
    "FRAGMENT_PAYLOAD_MAX",
    "FragmentError",
    "Reassembler",
    "count_and_index",
    "group_id",
    "is_ack",
    "split",
]
