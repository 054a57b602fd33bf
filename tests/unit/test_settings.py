"""Settings: one prefix, validated at start with errors that name the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_defaults_are_sane() -> None:
    s = Settings()
    assert s.bind == "127.0.0.1:5000"
    assert s.memory_mb == 128 and s.pids == 64 and s.pool_size == 2
    assert s.flush_interval_ms <= 100


def test_environment_with_prefix_and_csv_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCE_API_TOKENS", "a, b")
    monkeypatch.setenv("SCE_ALLOWED_ORIGINS", "https://x.test")
    monkeypatch.setenv("SCE_MEMORY_MB", "256")
    s = Settings()
    assert s.api_tokens == ["a", "b"]
    assert s.allowed_origins == ["https://x.test"]
    assert s.memory_mb == 256


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCE_MEMORY_MB", "lots"),
        ("SCE_FLUSH_INTERVAL_MS", "500"),
        ("SCE_RUNTIME", "kata"),
        ("SCE_TIMEOUT_S", "100"),  # above the default maximum
        ("SCE_NO_SUCH_SETTING", "1"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
