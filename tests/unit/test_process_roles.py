"""How `tidings serve --processes N` spreads the loops (tidings/cli/processes.py)."""

from __future__ import annotations

from tidings.api.app import Roles
from tidings.cli.processes import roles_for


def test_one_process_runs_everything() -> None:
    assert roles_for(0, 1) == Roles()


def test_two_processes_one_takes_requests_the_other_runs_every_loop() -> None:
    first, second = roles_for(0, 2), roles_for(1, 2)
    assert first.http and first.smpp
    assert not (first.delivery or first.webhooks or first.background)
    assert not second.http and not second.smpp
    assert second.delivery and second.webhooks and second.background


def test_more_processes_take_requests_and_send_webhooks() -> None:
    for index in range(2, 5):
        roles = roles_for(index, 5)
        assert roles.http and roles.webhooks and not roles.delivery and not roles.background
    # Every loop runs somewhere, and the lanes and the background loops exactly once.
    every = [roles_for(i, 5) for i in range(5)]
    assert sum(r.delivery for r in every) == 1 and sum(r.background for r in every) == 1


def test_api_processes_all_take_requests() -> None:
    every = [roles_for(i, 3, with_workers=False) for i in range(3)]
    assert all(r.http and not r.delivery and not r.webhooks for r in every)
    assert [r.smpp for r in every] == [True, False, False]
