"""The server's policy for side-channel records: nothing the program claims is trusted."""

from __future__ import annotations

import struct
import zlib

from app.core.rich import RichLimits, RichOutput
from app.core.sidechannel import Record
from app.server.frames import sequenced


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


LIMITS = RichLimits(image_max_bytes=1000, file_max_bytes=100, files_max_count=2, total_bytes=1500)


def test_png_size_comes_from_the_png_not_the_record() -> None:
    image = RichOutput(LIMITS).image(
        Record("image", {"mime": "image/png", "width": 1, "height": 1}, png(640, 480), None)
    )
    assert image is not None and (image.width, image.height) == (640, 480)
    assert image.data and sequenced(image, 1).wire()["data"]


def test_images_past_the_budget_are_omitted_and_the_rest_still_counts() -> None:
    rich = RichOutput(LIMITS)
    frames = [rich.image(Record("image", {"mime": "image/png"}, png(2, 2) + b"x" * 500, None)) for _ in range(4)]
    assert [f is not None and "data" in sequenced(f, 1).wire() for f in frames] == [True, True, False, False]
    assert frames[3] is not None and sequenced(frames[3], 1).wire()["omitted"] == "too_large"


def test_not_a_png_or_an_unknown_mime_shows_nothing() -> None:
    rich = RichOutput(LIMITS)
    assert rich.image(Record("image", {"mime": "image/png"}, b"GIF89a", None)) is None
    assert rich.image(Record("image", {"mime": "text/html"}, b"<script>", None)) is None


def test_files_count_size_duplicates_and_truncation() -> None:
    rich = RichOutput(LIMITS)
    rich.file(Record("file", {"path": "a.txt", "mime": "text/plain"}, b"a", None))
    rich.file(Record("file", {"path": "a.txt"}, b"again", None))  # a duplicate path is ignored
    rich.file(Record("file", {"path": "/etc/passwd"}, b"x", None))  # never an absolute path
    rich.file(Record("file", {"path": "big.bin", "size": 10**12}, b"x" * 101, None))
    rich.file(Record("file", {"path": "third"}, b"x", None))
    assert [(f.path, f.data is not None) for f in rich.files] == [("a.txt", True), ("big.bin", False)]
    assert rich.files[1].size == 101  # the size of what came, not what was claimed
    assert rich.files_truncated


def test_a_forged_file_record_cannot_name_a_path_outside_the_working_directory() -> None:
    """The program holds the nonce (it runs in the bootstrap's process) and can forge records: a file
    path that a client would join under its download folder must be one files in would accept."""
    rich = RichOutput(LIMITS)
    for path in ("../../etc/cron.d/evil", "a/../../x", "./x", "a//b", "a\\..\\b", "nul\x00x", ""):
        rich.file(Record("file", {"path": path}, b"x", None))
    rich.file(Record("file", {"path": "ok/fine.txt"}, b"x", None))
    assert [f.path for f in rich.files] == ["ok/fine.txt"]
