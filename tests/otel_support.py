"""
OpenTelemetry read back in tests: the SDK's in-memory span exporter and metric reader.

The global providers are process-wide and can be set once, so no test sets them: each gets
providers of its own and hands them to the API object (``tracer_provider=``,
``meter_provider=``), as an application hands them to an OTel instrumentation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["Point", "Telemetry", "everything_exported", "otel"]


@attrs.frozen
class Point:
    """One data point of a metric: its attributes and its value (a sum, or a histogram's)."""

    attributes: dict[str, Any]
    value: float
    """A counter's sum, or a histogram's sum of observations."""
    count: int
    """A histogram's number of observations (a counter's: 0)."""


@attrs.define
class Telemetry:
    """A test's own tracer and meter providers, and what they received."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    @property
    def options(self) -> dict[str, Any]:
        """The API object's keywords that report to these providers."""
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Every ended span, in the order they ended; only those called `name` if given."""
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        """The one ended span called `name`."""
        found = self.spans(name)
        assert len(found) == 1, f"{len(found)} spans called {name!r}: {[s.name for s in found]}"
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """The ended spans whose parent is `parent`, by start time."""
        assert parent.context is not None
        kids = [
            s
            for s in self.spans()
            if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]
        return sorted(kids, key=lambda s: s.start_time or 0)

    def points(self, metric: str) -> list[Point]:
        """Every data point of `metric` collected now (empty if it was never recorded)."""
        found: list[Point] = []
        data = self.reader.get_metrics_data()
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name != metric:
                        continue
                    point: Any
                    for point in item.data.data_points:
                        attributes = dict(point.attributes or {})
                        if hasattr(point, "bucket_counts"):
                            found.append(Point(attributes, point.sum, point.count))
                        else:
                            found.append(Point(attributes, point.value, 0))
        return found

    def total(self, metric: str, **attributes: Any) -> float:
        """The sum of `metric` over its points whose attributes include `attributes`."""
        return sum(
            p.value
            for p in self.points(metric)
            if all(p.attributes.get(k) == v for k, v in attributes.items())
        )


def everything_exported(telemetry: Telemetry) -> str:
    """
    Every string a span, an event, a link, a status or a metric carries, in one text.

    Names, attribute keys and values (sequences included), event names and attributes,
    status descriptions, the resource, and every metric's name, description, unit and point
    attributes: what a search for the secret or an email must not find.
    """
    found: list[str] = []

    def attrs_of(values: Any) -> None:
        for key, value in dict(values or {}).items():
            found.append(str(key))
            if isinstance(value, list | tuple):
                found.extend(str(v) for v in value)
            else:
                found.append(str(value))

    for span in telemetry.spans():
        found.append(span.name)
        attrs_of(span.attributes)
        attrs_of(span.resource.attributes)
        found.append(str(span.status.description))
        for event in span.events:
            found.append(event.name)
            attrs_of(event.attributes)
        for link in span.links:
            attrs_of(link.attributes)
        found.append(span.to_json())
    data = telemetry.reader.get_metrics_data()
    if data is not None:
        found.append(data.to_json())
    return "\n".join(found)


def in_memory() -> Telemetry:
    """Tracer and meter providers of their own, recording in memory."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return Telemetry(tracer_provider, meter_provider, exporter, reader)


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    """Tracer and meter providers of the test's own, recording in memory."""
    telemetry = in_memory()
    yield telemetry
    telemetry.tracer_provider.shutdown()
    telemetry.meter_provider.shutdown()
