"""`tidings optout …` and `clients update --optout-confirmation` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tidings.cli.main import app


def _cli(database_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"TIDINGS_DATABASE_URL": database_url})
    return result.exit_code, result.output


def _json(database_url: str, *args: str) -> Any:
    code, out = _cli(database_url, *args, "--json")
    assert code == 0, out
    return json.loads(out)


def test_optout_commands(database_url: str, tmp_path: Path) -> None:
    client = str(_json(database_url, "clients", "create", "--name", "cli")["id"])
    added = _json(database_url, "optout", "add", client, "+380972000001", "380972000002")
    assert added == {
        "client_id": int(client),
        "added": 2,
        "unchanged": 0,
        "msisdns": ["380972000001", "380972000002"],
    }
    csv_file = tmp_path / "stops.csv"
    csv_file.write_text("msisdn\n380972000002\n+380972000003\n", encoding="utf-8")
    imported = _json(database_url, "optout", "import", client, str(csv_file))
    assert (imported["imported"], imported["added"]) == (2, 1)
    listed = _json(database_url, "optout", "list", client, "--limit", "2")
    assert [(o["msisdn"], o["source"]) for o in listed] == [
        ("380972000001", "cli"),
        ("380972000002", "cli"),
    ]
    later = _json(database_url, "optout", "list", client, "--after", "380972000002")
    assert [(o["msisdn"], o["source"]) for o in later] == [("380972000003", "import")]
    removed = _json(database_url, "optout", "remove", client, "380972000001", "380972000009")
    assert (removed["removed"], removed["unchanged"]) == (1, 1)
    assert _json(database_url, "optout", "count", client)["optouts"] == 2
    # Errors are one line and exit 1: a bad number, a bad file line, an unknown client.
    code, out = _cli(database_url, "optout", "add", client, "12")
    assert code == 1 and "invalid msisdn" in out
    csv_file.write_text("380972000005\nnope\n", encoding="utf-8")
    code, out = _cli(database_url, "optout", "import", client, str(csv_file))
    assert code == 1 and "line 2" in out
    code, out = _cli(database_url, "optout", "list", "999")
    assert code == 1
    assert _json(database_url, "optout", "count", client)["optouts"] == 2


def test_confirmation_replies_are_set_and_cleared(database_url: str) -> None:
    client = str(_json(database_url, "clients", "create", "--name", "replies")["id"])
    updated = _json(
        database_url,
        "clients",
        "update",
        client,
        "--optout-confirmation",
        "You are unsubscribed. Reply START to come back.",
    )
    assert updated["optout_confirmation"] == "You are unsubscribed. Reply START to come back."
    assert updated["optin_confirmation"] is None
    unchanged = _json(database_url, "clients", "update", client, "--name", "renamed")
    assert unchanged["optout_confirmation"].startswith("You are unsubscribed")
    cleared = _json(database_url, "clients", "update", client, "--optout-confirmation", "")
    assert cleared["optout_confirmation"] is None
