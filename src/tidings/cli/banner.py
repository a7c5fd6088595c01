"""What `tidings serve` prints when it starts: where it listens, where to look, what to try."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import typer
from sqlalchemy.engine import make_url

from tidings import __version__
from tidings.config import Settings, sqlite_path
from tidings.demo import DemoKeys

DEMO_BODY = (
    '{"destination":"phone","msisdn":"380972000000","reference":"demo1",'
    '"originator":"Tidings","body":"Hello from Tidings"}'
)

DEMO_VIBER_BODY = (
    '{"messages":[{"to":[{"msisdn":"380972000006","external_id":"demoviber1"}],'
    '"text":"Hello over Viber","alpha_name":"Tidings",'
    '"options":{"sms":{"text":"Hello over SMS","originator":"Tidings"}}}]}'
)


def cli_command() -> str:
    """How the user can call this same `tidings` from their shell: plain `tidings` when it is
    on PATH, else the venv's script (`.venv/bin/tidings` from the project folder)."""
    script = Path(sys.executable).with_name("tidings")
    on_path = shutil.which("tidings")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "tidings"
    try:
        return os.path.relpath(script)
    except ValueError:  # another drive (Windows)
        return str(script)


def database_location(settings: Settings) -> str:
    path = sqlite_path(settings.database_url)
    if path is not None:
        return str(path.resolve())
    return make_url(settings.database_url).render_as_string(hide_password=True)


def banner_text(settings: Settings, keys: DemoKeys | None, command: str | None = None) -> str:
    base = f"http://{settings.http_host}:{settings.http_port}"
    command = command or cli_command()
    lines = [
        "",
        f"Tidings {__version__} listening on {base}",
        f"  API docs (OpenAPI):  {base}/docs   ({base}/openapi.json)",
        f"  operator console:    {base}/console",
        f"    create an operator: {command} operators create --name NAME",
        f"  database:            {database_location(settings)}",
        f"  command line:        {command} --help   (or `source .venv/bin/activate`)",
    ]
    if keys is None:
        return "\n".join([*lines, ""])
    live = keys.live_key
    lines += [
        "",
        'Demo: client "demo" with 100.00 EUR, a simulator that delivers everything, demo prices.',
        f"  live key: {live}",
        f"  test key: {keys.test_key}",
        f"  (the same keys on every start; `{command} demo --rotate-keys` replaces them)",
        "",
        "Send an SMS, then ask its status:",
        f"  curl -s -X POST {base}/rest/sms/create -H 'X-API-KEY: {live}' \\",
        "    -H 'Content-Type: application/json' \\",
        f"    -d '{DEMO_BODY}'",
        f"  curl -s {base}/rest/sms/reference/demo1 -H 'X-API-KEY: {live}'",
        "",
        "Look a number up (HLR):",
        f"  curl -s -X PUT {base}/hlr/create -H 'X-API-KEY: {live}' \\",
        "    -F msisdn=380505142320 -F reference=hlr1",
        f"  curl -s {base}/hlr/reference/hlr1 -H 'X-API-KEY: {live}'",
        "",
        'Send a Viber message from the alpha name "Tidings" (this number has no Viber: the SMS',
        "alternative goes out instead, see docs/viber.md):",
        f"  curl -s -X POST {base}/rest/viber/create -H 'X-API-KEY: {live}' \\",
        "    -H 'Content-Type: application/json' \\",
        f"    -d '{DEMO_VIBER_BODY}'",
        f"  curl -s {base}/rest/viber/reference/demoviber1 -H 'X-API-KEY: {live}'",
        "",
    ]
    return "\n".join(lines)


def print_banner(settings: Settings, keys: DemoKeys | None) -> None:
    typer.echo(banner_text(settings, keys), err=True)
