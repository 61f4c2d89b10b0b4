"""Reading /metrics in tests: the text format parsed by prometheus-client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape's samples: `value(name, **labels)` (0 when absent, the sum over labels not given)."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(
            value
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
        )

    def has(self, name: str) -> bool:
        return any(sample_name == name for sample_name, _, _ in self.samples)


def scrape(client, **headers) -> Scrape:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    return Scrape(response.content.decode())


def scraped_when(read, ready, timeout: float = 10) -> Scrape:
    """`read()` again until `ready(scrape)`, or the last one after `timeout` seconds. A turn's series move as
    its runner ends, just after its last event reached the client that the test is."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        page = read()
        if ready(page) or time.monotonic() > deadline:
            return page
        time.sleep(0.05)
