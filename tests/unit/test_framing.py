"""The attach stream's 8-byte framing, fed in every possible split."""

from __future__ import annotations

import pytest

from app.sandbox.docker.framing import FrameError, FrameParser, encode_frame


def test_frames_split_at_every_byte_come_out_whole() -> None:
    stream = encode_frame("stdout", b"hello\n") + encode_frame("stderr", "é\n".encode()) + encode_frame("stdout", b"x")
    for cut in range(len(stream) + 1):
        parser = FrameParser()
        got = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert got == [("stdout", b"hello\n"), ("stderr", "é\n".encode()), ("stdout", b"x")]
        assert parser.pending == 0


def test_one_byte_at_a_time() -> None:
    stream = b"".join(encode_frame("stderr", bytes([i]) * i) for i in range(1, 40))
    parser = FrameParser()
    got = [item for i in range(len(stream)) for item in parser.feed(stream[i : i + 1])]
    assert [len(p) for _, p in got] == list(range(1, 40))


def test_empty_payload_is_skipped() -> None:
    assert FrameParser().feed(encode_frame("stdout", b"")) == []


def test_unknown_stream_byte_is_an_error() -> None:
    with pytest.raises(FrameError):
        FrameParser().feed(b"\x05\x00\x00\x00\x00\x00\x00\x01x")


def test_incomplete_header_is_held() -> None:
    parser = FrameParser()
    assert parser.feed(b"\x01\x00\x00") == []
    assert parser.pending == 3


def test_neighbouring_frames_of_one_stream_are_joined() -> None:
    stream = b"".join(encode_frame("stdout", b"%d\n" % i) for i in range(5)) + encode_frame("stderr", b"e\n")
    assert FrameParser().feed(stream) == [("stdout", b"0\n1\n2\n3\n4\n"), ("stderr", b"e\n")]
