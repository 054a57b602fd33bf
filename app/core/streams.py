"""The two output streams a program has, named as the protocol names them."""

from __future__ import annotations

from typing import Literal

Stream = Literal["stdout", "stderr"]
