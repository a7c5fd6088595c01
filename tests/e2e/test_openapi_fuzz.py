"""Schemathesis against `tidings serve` over loopback, from the document it serves.

Every documented operation of the three external APIs gets generated requests, valid and
invalid ones, sent with the demo client's key (or its test key, a wrong key, none), the
client's delivery-report credentials and a supplier's DLR credentials, so that
authenticated paths run too. Each answer must be no 5xx, have a documented status code and
content type, carry the documented required headers, and match its documented schema.

Bounded and deterministic: a fixed number of examples per operation, derandomised, no
shrinking (a failure is recorded, not minimised) and no example database. The summary of
the run is printed (`pytest -s`) and written to the test's directory.
"""

from __future__ import annotations

import base64
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.gateway import Gateway

# Per operation and generation mode (valid and invalid data); PostgreSQL's run is shorter, it
# is there for what only PostgreSQL refuses.
MAX_EXAMPLES = {"sqlite": 12, "postgresql": 6}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass(frozen=True)
class Credentials:
    client_id: int
    live_key: str
    test_key: str
    dr_login: str
    dr_password: str
    dlr_login: str
    dlr_password: str


@dataclass
class Run:
    operations: int = 0
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        lines = [
            f"schemathesis: {self.operations} operations, {self.examples} examples, "
            f"{len(self.failures)} distinct failures",
            f"answers by status: {statuses}",
        ]
        lines += [
            f"  {label}: " + ", ".join(f"{code} x{n}" for code, n in sorted(counts.items()))
            for label, counts in self.by_operation.items()
        ]
        lines += [f"FAILED {key}\n{detail}" for key, detail in self.failures.items()]
        return "\n".join(lines)


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[Gateway]:
    node = Gateway(
        database_url,
        tmp_path,
        export_dir=str(tmp_path / "exports"),
        # The fuzzer is one client sending as fast as it can: its rate limit is not the test.
        rate_limit="100000",
    )
    yield node
    node.stop()


@dataclass(frozen=True)
class Known:
    """Things that exist, so that look-ups find something now and then."""

    path_values: dict[str, str]
    references: Iterator[str]


def _known(base_url: str, creds: Credentials) -> Known:
    key = {"X-API-KEY": creds.live_key}
    single = requests.post(
        f"{base_url}/rest/sms/create", json=_sms("known1"), headers=key, timeout=30
    ).json()
    batch = requests.post(
        f"{base_url}/rest/sms/create",
        json={
            "destination": "phones",
            "phones": [{"msisdn": "380972000001", "reference": "known2"}],
            "originator": "test",
            "body": "fuzz",
        },
        headers=key,
        timeout=30,
    ).json()
    export = requests.post(
        f"{base_url}/rest/stat/create",
        json={"message_id": [single["id"]]},
        headers=key,
        timeout=30,
    ).json()
    values = {
        "message_id": single["id"],
        "reference": "known1",
        "extra_id": "known1",
        "task_id": batch["task_id"],
        "key": export["key"],
        "fmt": "json",
    }
    return Known(values, (f"fuzz{n}" for n in itertools.count()))


def _sms(reference: str) -> dict[str, Any]:
    return {
        "destination": "phone",
        "msisdn": "380972000000",
        "reference": reference,
        "originator": "test",
        "body": "fuzz",
    }


def _aim(case: Case, known: Known) -> None:
    """Point the case at things that exist: a valid SMS body, a stored id or reference."""
    if case.path_parameters:
        for name in case.path_parameters:
            if name in known.path_values:
                case.path_parameters[name] = known.path_values[name]
    sms_body = case.method in ("PUT", "POST") and case.path.endswith(("/sms/create", "/sms/price"))
    if sms_body and case.media_type in ("application/json", "text/json"):
        case.body = _sms(next(known.references))
    json_body = case.media_type in ("application/json", "text/json")
    if case.path.endswith("/stat/create") and json_body:  # past 5 exports: error 92
        case.body = {"message_id": [known.path_values["message_id"]]}
    if case.path == "/api/dlr":
        case.query = {**(case.query or {}), "message_id": ["m1"], "message_state": ["delivered"]}
        case.query.pop("request_id", None)


def _credentials(gateway: Gateway) -> Credentials:
    demo = gateway.cli("demo")
    dr = gateway.cli("clients", "dr-credentials", str(demo["id"]))
    dlr = gateway.cli("suppliers", "dlr-credentials", "simulator")
    return Credentials(
        demo["id"],
        demo["live_key"],
        demo["test_key"],
        dr["login"],
        dr["password"],
        dlr["login"],
        dlr["password"],
    )


def _basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def _authenticate(case: Case, who: str, creds: Credentials) -> None:
    """Put the identity `who` (right, test, wrong or none) into the case, per API."""
    security = case.operation.definition.raw.get("security") or [{}]
    schemes = set(security[0])
    if "apiKey" in schemes:
        keys = {"live": creds.live_key, "test": creds.test_key, "wrong": "wrong-key"}
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}
        if who in keys:
            case.headers["X-API-KEY"] = keys[who]
    elif "drBasic" in schemes:
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
        if who in ("live", "test"):
            case.headers["Authorization"] = _basic(creds.dr_login, creds.dr_password)
            if who == "live":  # the client's own id, so that lookups happen
                case.path_parameters = {
                    **(case.path_parameters or {}),
                    "client_id": str(creds.client_id),
                }
        elif who == "wrong":
            case.headers["Authorization"] = _basic(creds.dr_login, "wrong")
    elif "dlrLogin" in schemes:
        query = {k: v for k, v in (case.query or {}).items() if k not in ("_login", "_password")}
        if who in ("live", "test"):
            query.update(_login=creds.dlr_login, _password=creds.dlr_password)
        elif who == "wrong":
            query.update(_login=creds.dlr_login, _password="wrong")
        case.query = query


@dataclass
class Target:
    """The gateway under test and what the requests need."""

    base_url: str
    creds: Credentials
    known: Known
    session: requests.Session
    examples: int  # per operation and generation mode


def _exercise(operation: Any, target: Target, run: Run) -> None:
    label = operation.label
    strategy = st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in MODES))
    identities = st.sampled_from(["live", "live", "live", "test", "wrong", "none"])

    @settings(
        max_examples=target.examples * len(MODES),
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=strategy, who=identities, aimed=st.booleans())
    def fuzz(case: Case, who: str, aimed: bool) -> None:
        if aimed:
            _aim(case, target.known)
        _authenticate(case, who, target.creds)
        response = case.call(base_url=target.base_url, session=target.session, timeout=30)
        run.examples += 1
        run.statuses[response.status_code] += 1
        run.by_operation.setdefault(label, Counter())[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:  # recorded, not raised: no shrinking, no retries
            for failure in group.exceptions:
                key = f"{label} [{response.status_code}] {failure.title}"
                if key not in run.failures:
                    run.failures[key] = (
                        f"  {case.as_curl_command()}\n  -> {response.status_code} "
                        f"{response.text[:300]}\n  {str(failure.message)[:1500]}"
                    )

    fuzz()
    run.operations += 1


def fuzz_gateway(gateway: Gateway, examples: int) -> tuple[Run, list[str]]:
    creds = _credentials(gateway)
    gateway.start()
    schema = schemathesis.openapi.from_url(f"{gateway.base_url}/openapi.json")
    run = Run()
    labels: list[str] = []
    with requests.Session() as session:
        target = Target(gateway.base_url, creds, _known(gateway.base_url, creds), session, examples)
        for result in schema.get_all_operations():
            operation = result.ok()
            labels.append(operation.label)
            _exercise(operation, target, run)
    return run, labels


def test_every_documented_answer_holds_under_fuzzing(
    gateway: Gateway, database_url: str, tmp_path: Path
) -> None:
    examples = MAX_EXAMPLES["sqlite" if database_url.startswith("sqlite") else "postgresql"]
    run, labels = fuzz_gateway(gateway, examples)
    summary = run.summary()
    print(summary)
    (tmp_path / "schemathesis-summary.txt").write_text(summary)
    assert run.operations == len(labels) > 0
    assert run.examples >= run.operations * examples  # hypothesis may exhaust small inputs
    assert not run.failures, summary
