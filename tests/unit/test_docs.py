"""The docs stay true to the code: every setting documented, every error code explained."""

from __future__ import annotations

from pathlib import Path

from app.errors import ERROR_TABLE
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`SCE_{name.upper()}`" in readme, name
        if field.default_factory is None and field.default is not None:
            assert f"| `SCE_{name.upper()}` | `{field.default}` |" in readme, name


def test_every_error_code_is_in_the_protocol_doc() -> None:
    doc = (ROOT / "docs" / "PROTOCOL.md").read_text()
    for code in ERROR_TABLE:
        assert f"`{code}`" in doc, code


def test_readme_gives_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
