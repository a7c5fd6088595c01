"""The default database is one per user, found the same from any folder (issue 15, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.config import Settings, sqlite_path


def test_the_default_database_is_in_the_users_data_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TIDINGS_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert sqlite_path(settings.database_url) == tmp_path / "data" / "tidings" / "tidings.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sqlite_path(Settings().database_url) == (
        tmp_path / "home" / ".local" / "share" / "tidings" / "tidings.db"
    )
    assert not (tmp_path / "data").exists()  # reading the settings creates nothing


def test_the_environment_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "postgresql://u@db.example/t")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://u@db.example/t"
    assert sqlite_path(settings.database_url) is None
