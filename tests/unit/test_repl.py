"""``sce repl``'s continuation rule: the local REPL's (``codeop``), so ``...`` appears exactly where
``python`` shows it."""

from __future__ import annotations

import pytest

from app.client.repl import needs_more


@pytest.mark.parametrize(
    ("source", "more"),
    [
        ("x = 1", False),
        ("def f():", True),
        ("def f():\n    return 1", True),  # a block ends with an empty line, as locally
        ("def f():\n    return 1\n", False),
        ("(1,", True),
        ("'''doc", True),
        ("x = = 1", False),  # a syntax error is sent: the server's interpreter says what is wrong
        ("if True:\n    pass\nelse:", True),
    ],
)
def test_continuation_is_the_local_repls(source: str, more: bool) -> None:
    assert needs_more(source) is more
