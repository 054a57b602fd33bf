"""The side channel's server half: stdout bytes in, ordinary output and records out, in order,
however the bytes were cut, whatever a hostile program writes, with memory bounded."""

from __future__ import annotations

import json
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.sidechannel import MARKER, Record, SideChannelDemux, png_size

NONCE = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def record(kind: str, meta: dict[str, object], data: bytes = b"", nonce: str = NONCE) -> bytes:
    head = json.dumps(meta).encode()
    return MARKER + f"{nonce}:{kind}:{len(head)}:{len(data)}\n".encode() + head + data


def demux(chunks: list[bytes], max_record: int = 1 << 20) -> list[bytes | Record]:
    d = SideChannelDemux(NONCE, max_record)
    items: list[bytes | Record] = []
    for chunk in chunks:
        items += d.feed(chunk)
    items += d.finish()
    merged: list[bytes | Record] = []
    for item in items:
        if isinstance(item, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += item
        else:
            merged.append(item)
    return merged


def png(width: int, height: int) -> bytes:
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")


def test_output_and_records_keep_their_order() -> None:
    img = png(640, 480)
    stream = b"before\n" + record("image", {"mime": "image/png"}, img) + b"after\n"
    assert demux([stream]) == [b"before\n", Record("image", {"mime": "image/png"}, img, None), b"after\n"]


def test_record_split_byte_by_byte() -> None:
    stream = b"a" + record("file", {"path": "x.txt"}, b"hello") + b"b"
    assert demux([bytes([c]) for c in stream]) == [b"a", Record("file", {"path": "x.txt"}, b"hello", None), b"b"]


def test_another_nonce_and_malformed_headers_are_plain_output() -> None:
    forged = record("image", {}, b"xx", nonce=OTHER)
    bad = [
        MARKER + NONCE.encode() + b":image:abc:1\n{}x",
        MARKER + NONCE.encode() + b":IMAGE:2:0\n{}",
        MARKER + NONCE.encode() + b":image:2:0\n[]",  # meta not an object
        MARKER + NONCE.encode() + b":image:1:0\n{",  # meta not JSON
        MARKER + NONCE.encode() + b":image:" + b"9" * 40 + b"\n",
    ]
    for stream in [forged, *bad]:
        assert demux([stream + b"\n"]) == [stream + b"\n"], stream


def test_oversized_record_is_skipped_not_buffered() -> None:
    d = SideChannelDemux(NONCE, max_record_bytes=1000)
    meta = json.dumps({"mime": "image/png"}).encode()
    header = MARKER + f"{NONCE}:image:{len(meta)}:{10_000_000}\n".encode() + meta
    items = d.feed(b"x" + header)
    for _ in range(100):
        items += d.feed(b"\0" * 100_000)
        assert d.held < 1000
    items += d.feed(b"y")
    assert items == [b"x", Record("image", {"mime": "image/png"}, None, "too_large"), b"y"]


def test_sandbox_omitted_record_has_no_data() -> None:
    meta = {"path": "big.bin", "size": 10**9, "omitted": "too_large"}
    assert demux([record("file", meta)]) == [Record("file", meta, None, "too_large")]


def test_finish_releases_a_held_marker_fragment_and_drops_a_cut_record() -> None:
    d = SideChannelDemux(NONCE, 1000)
    assert d.feed(b"prompt> " + MARKER[:3]) == [b"prompt> "]
    assert d.finish() == [MARKER[:3]]
    d = SideChannelDemux(NONCE, 1000)
    assert d.feed(record("file", {"path": "a"}, b"0123456789")[:-4]) == []
    assert d.finish() == []


def test_png_size() -> None:
    assert png_size(png(640, 480)) == (640, 480)
    assert png_size(b"GIF89a" + b"\0" * 30) is None
    assert png_size(png(0, 5)) is None
    assert png_size(b"\x89PNG") is None


parts = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([MARKER, MARKER + NONCE.encode()[:7], b"\x1e", b"\n"]),
    st.builds(lambda d: ("rec", d), st.binary(max_size=300)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(parts, max_size=12), st.lists(st.integers(min_value=1, max_value=64), min_size=1))
def test_any_split_gives_the_same_items(pieces: list[bytes | tuple[str, bytes]], cuts: list[int]) -> None:
    stream = b"".join(record("file", {"n": len(p[1])}, p[1]) if isinstance(p, tuple) else p for p in pieces)
    whole = demux([stream])
    chunks, pos, i = [], 0, 0
    while pos < len(stream):
        chunks.append(stream[pos : pos + cuts[i % len(cuts)]])
        pos += cuts[i % len(cuts)]
        i += 1
    assert demux(chunks) == whole
    records = [item for item in whole if isinstance(item, Record)]
    assert [r.data for r in records] == [p[1] for p in pieces if isinstance(p, tuple)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_garbage_never_raises_and_memory_stays_bounded(chunks: list[bytes]) -> None:
    d = SideChannelDemux(NONCE, 4096)
    for chunk in chunks:
        d.feed(MARKER + NONCE.encode() + b":" + chunk)
        assert d.held <= len(MARKER) + 33 + 48 + 65_536 + 4096
    d.finish()


def test_exception_records_are_checked_and_cut_to_size() -> None:
    from app.core.sidechannel import exception_of

    def of(meta: dict[str, object]) -> tuple[str, str, int | None] | None:
        (item,) = demux([record("exception", meta)])
        assert isinstance(item, Record)
        return exception_of(item)

    assert of({"name": "ValueError", "value": "bad", "line": 3}) == ("ValueError", "bad", 3)
    assert of({"name": "E", "value": "", "line": None}) == ("E", "", None)
    name, value, line = of({"name": "N" * 500, "value": "v" * 5000, "line": 1}) or ("", "", 0)
    assert (len(name), len(value), line) == (200, 1000, 1)
    bad_metas: list[dict[str, object]] = [
        {"value": "x", "line": 1},
        {"name": "", "value": "x", "line": 1},
        {"name": "E", "value": 5, "line": 1},
        {"name": "E", "value": "x", "line": 0},
        {"name": "E", "value": "x", "line": True},
        {"name": "E", "value": "x", "line": "3"},
        {"name": "E", "value": "x", "line": 10**30},  # forged: no client holds that number exactly
    ]
    for bad in bad_metas:
        assert of(bad) is None, bad
