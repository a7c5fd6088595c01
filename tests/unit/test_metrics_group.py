"""The metrics of several serve processes merged into one exposition, labelled by process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tidings.observability.group import merge


def exposition(accepted: float, depth: float) -> str:
    registry = CollectorRegistry()
    Counter("tidings_messages_accepted", "Accepted.", ["client_id"], registry=registry).labels(
        "7"
    ).inc(accepted)
    Gauge("tidings_queue_depth", "Due.", ["queue"], registry=registry).labels("dispatch").set(depth)
    return generate_latest(registry).decode()


def test_every_sample_keeps_its_labels_and_gains_its_process() -> None:
    text = merge({0: exposition(3, 5), 1: exposition(4, 5)}).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    accepted = {
        s.labels["process"]: s.value
        for s in families["tidings_messages_accepted"].samples
        if s.name.endswith("_total")
    }
    assert accepted == {"0": 3.0, "1": 4.0}
    assert all(s.labels["client_id"] == "7" for s in families["tidings_messages_accepted"].samples)
    depth = families["tidings_queue_depth"]
    assert depth.type == "gauge"
    assert sorted(s.labels["process"] for s in depth.samples) == ["0", "1"]
    assert text.count("# TYPE tidings_messages_accepted_total counter") == 1  # one family


def test_a_single_process_is_still_labelled() -> None:
    text = merge({0: exposition(1, 0)}).decode()
    assert 'process="0"' in text
