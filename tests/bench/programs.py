"""The programs each measurement runs, and what they must print."""

from __future__ import annotations

HELLO = "print(2 + 2)"
HELLO_OUT = "4\n"
PASS = "pass"

LINES = "for i in range(100000): print(i)"
LINES_BYTES = sum(len(str(i)) + 1 for i in range(100_000))  # 588,890

FLOOD_LINE = 1024
FLOOD_COUNT = 10 * 1024
FLOOD = f"import sys\nline = 'x' * {FLOOD_LINE - 1} + '\\n'\nfor _ in range({FLOOD_COUNT}): sys.stdout.write(line)"
FLOOD_BYTES = FLOOD_LINE * FLOOD_COUNT  # 10 MiB in 1 KiB lines

BUSY = "while True: pass"
FORK_BUSY = "import os\n[os.fork() for _ in range(3)]\nwhile True: pass"

OOM = "b'x' * (512 * 1024 * 1024)"
