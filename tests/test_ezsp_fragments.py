"""APS fragmentation across the EZSP link (gbhil.han.ezsp.fragments): what the emulated
NCP and the hub's EzspRadio both rely on to carry GBCS messages longer than one frame."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gbhil.han.ezsp.fragments import (
    FRAGMENT_PAYLOAD_MAX,
    FragmentError,
    Reassembler,
    count_and_index,
    group_id,
    is_ack,
    split,
)

KEY = (0x1234, 7, 0x0109, 0x0704)
payloads = st.binary(max_size=FRAGMENT_PAYLOAD_MAX * 12)


@given(payloads, st.integers(min_value=1, max_value=120), st.randoms(use_true_random=False))
def test_fragments_in_any_order_reassemble_the_payload(
    payload: bytes, size: int, rnd: object
) -> None:
    parts = split(payload, size)
    assert all(0 < len(p) <= size for p in parts) or parts == [b""]
    assert b"".join(parts) == payload
    order = list(enumerate(parts))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    r = Reassembler()
    results = [r.add(KEY, group_id(len(parts), i), p) for i, p in order]
    assert results[-1] == payload
    assert all(x is None for x in results[:-1])
    assert r.pending == 0


@given(st.binary(min_size=2 * FRAGMENT_PAYLOAD_MAX + 1, max_size=FRAGMENT_PAYLOAD_MAX * 12))
def test_a_repeated_later_fragment_changes_nothing(payload: bytes) -> None:
    parts = split(payload)
    n = len(parts)
    r = Reassembler()
    assert r.add(KEY, group_id(n, 0), parts[0]) is None
    assert r.add(KEY, group_id(n, 1), parts[1]) is None
    assert r.add(KEY, group_id(n, 1), b"retry with other bytes") is None
    for i in range(2, n - 1):
        r.add(KEY, group_id(n, i), parts[i])
    assert r.add(KEY, group_id(n, n - 1), parts[-1]) == payload


def test_an_abandoned_message_never_mixes_with_the_next_under_the_same_key() -> None:
    """The sender gave up after two of three fragments; 256 messages later its APS
    counter comes round: the new message is built from its own fragments only."""
    r = Reassembler()
    assert r.add(KEY, group_id(3, 0), b"old-0") is None
    assert r.add(KEY, group_id(3, 1), b"old-1") is None
    assert r.add(KEY, group_id(3, 0), b"new-0") is None
    assert r.add(KEY, group_id(3, 2), b"new-2") is None
    assert r.add(KEY, group_id(3, 1), b"new-1") == b"new-0new-1new-2"


def test_messages_from_two_senders_do_not_mix() -> None:
    r = Reassembler()
    other = (0x5678, *KEY[1:])
    assert r.add(KEY, group_id(2, 0), b"ab") is None
    assert r.add(other, group_id(2, 0), b"xy") is None
    assert r.add(other, group_id(2, 1), b"z") == b"xyz"
    assert r.add(KEY, group_id(2, 1), b"c") == b"abc"


def test_an_index_past_the_count_drops_the_message_with_the_reason() -> None:
    r = Reassembler()
    r.add(KEY, group_id(2, 0), b"ab")
    with pytest.raises(FragmentError, match="fragment 2 of a message of 2 fragments"):
        r.add(KEY, 2 << 8 | 2, b"c")
    assert r.pending == 0, "nothing half-built is kept"


def test_a_late_first_fragment_still_completes_the_message() -> None:
    r = Reassembler()
    assert r.add(KEY, group_id(3, 2), b"c") is None
    assert r.add(KEY, group_id(3, 1), b"b") is None
    assert r.add(KEY, group_id(3, 0), b"a") == b"abc"


def test_a_first_fragment_without_a_count_is_refused() -> None:
    r = Reassembler()
    with pytest.raises(FragmentError, match="gives no count"):
        r.add(KEY, 0x0000, b"a")
    assert r.pending == 0


def test_more_than_255_fragments_is_refused() -> None:
    with pytest.raises(FragmentError, match="APS fragmentation allows 255"):
        split(bytes(256), 1)
    with pytest.raises(FragmentError, match="must be positive"):
        split(b"x", 0)


@given(st.integers(min_value=1, max_value=255), st.data())
def test_group_id_round_trips(count: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=count - 1))
    assert count_and_index(group_id(count, index)) == (count, index)
    assert not is_ack(group_id(count, index), b"payload")


def test_invalid_fragment_numbers_are_refused() -> None:
    for count, index in ((0, 0), (2, 2), (256, 0), (3, -1)):
        with pytest.raises(FragmentError, match="not a valid fragment"):
            group_id(count, index)


def test_a_fragment_acknowledgement_has_no_data_and_count_0xff() -> None:
    assert is_ack(0xFF03, b"")
    assert not is_ack(0xFF03, b"x")
    assert not is_ack(0x0203, b"")


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=90)), max_size=40))
def test_reassembly_of_arbitrary_fragments_never_yields_wrong_data(
    frames: list[tuple[int, bytes]],
) -> None:
    """Fuzz: any sequence either completes with the parts it was given or raises
    FragmentError; nothing else escapes."""
    r = Reassembler()
    seen: dict[int, bytes] = {}
    expected_count = 0
    for group, payload in frames:
        count, index = count_and_index(group)
        if index == 0 and 0 in seen:
            seen.clear()  # a new first fragment starts the message afresh
        seen.setdefault(index, payload)
        if index == 0:
            expected_count = count
        try:
            whole = r.add(KEY, group, payload)
        except FragmentError:
            seen.clear()
            continue
        if whole is not None:
            assert whole == b"".join(seen[i] for i in range(expected_count))
            seen.clear()
