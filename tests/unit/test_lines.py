"""Line assembly: PROTOCOL.md's output framing rules, without Docker or clocks."""

from __future__ import annotations

from app.core.lines import OutputAssembler, coalesce


def make(output_bytes: int = 10_000, max_line: int = 100, interval: float = 0.05) -> OutputAssembler:
    return OutputAssembler(output_bytes=output_bytes, max_line_chars=max_line, flush_interval_s=interval)


def test_complete_lines_go_out_at_once_and_together() -> None:
    a = make()
    assert a.feed("stdout", b"a\nb\nc\n", 0.0) == [("stdout", "a\nb\nc\n")]
    assert a.next_flush_at() is None


def test_a_line_is_never_cut_in_two() -> None:
    a = make()
    assert a.feed("stdout", b"hel", 0.0) == []
    assert a.feed("stdout", b"lo\nwor", 0.01) == [("stdout", "hello\n")]
    assert a.feed("stdout", b"ld\n", 0.02) == [("stdout", "world\n")]


def test_partial_line_waits_at_most_the_interval_from_when_it_started() -> None:
    a = make(interval=0.05)
    a.feed("stdout", b"name? ", 1.00)
    assert a.next_flush_at() == 1.05
    assert a.flush_due(1.04) == []
    a.feed("stdout", b"more", 1.04)  # still waiting since 1.00: a trickle never starves the flush
    assert a.flush_due(1.05) == [("stdout", "name? more")]
    assert a.next_flush_at() is None


def test_partial_line_is_sent_in_pieces_past_the_longest_line() -> None:
    a = make(max_line=10)
    out = a.feed("stdout", b"x" * 25, 0.0)
    assert out == [("stdout", "x" * 10), ("stdout", "x" * 10)]
    assert a.finish() == [("stdout", "x" * 5)]


def test_utf8_split_across_payloads_survives() -> None:
    a = make()
    data = "héllo ✓\n".encode()
    out = []
    for i in range(len(data)):
        out += a.feed("stdout", data[i : i + 1], 0.0)
    assert "".join(t for _, t in out) == "héllo ✓\n"


def test_invalid_utf8_becomes_replacement_and_nothing_else_changes() -> None:
    a = make()
    assert a.feed("stderr", b"\xff\x1b[31mred\x1b[0m\r\tx\n", 0.0) == [("stderr", "\ufffd\x1b[31mred\x1b[0m\r\tx\n")]


def test_cut_character_at_the_end_becomes_replacement() -> None:
    a = make()
    a.feed("stdout", "✓".encode()[:2], 0.0)
    assert a.finish() == [("stdout", "\ufffd")]


def test_streams_have_their_own_decoders_and_partials() -> None:
    a = make()
    a.feed("stdout", "é".encode()[:1], 0.0)
    assert a.feed("stderr", b"err\n", 0.0) == [("stderr", "err\n")]
    assert a.feed("stdout", "é".encode()[1:] + b"\n", 0.0) == [("stdout", "é\n")]


def test_output_cap_cuts_at_the_exact_byte_and_counts() -> None:
    a = make(output_bytes=10)
    out = a.feed("stdout", b"12345\n", 0.0) + a.feed("stderr", b"abcdefgh\n", 0.0)
    assert a.truncated
    assert a.stdout_bytes + a.stderr_bytes == 10
    assert "".join(t for _, t in out) == "12345\nabcd"
    assert a.feed("stdout", b"more\n", 0.0) == []


def test_output_exactly_at_the_cap_is_not_truncated() -> None:
    a = make(output_bytes=6)
    a.feed("stdout", b"12345\n", 0.0)
    assert not a.truncated


def test_coalesce_merges_neighbours_of_one_stream_only() -> None:
    chunks = [("stdout", "a\n"), ("stdout", "b\n"), ("stderr", "c\n"), ("stdout", "d\n")]
    assert coalesce(chunks) == [("stdout", "a\nb\n"), ("stderr", "c\n"), ("stdout", "d\n")]  # type: ignore[arg-type]
