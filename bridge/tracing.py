"""Optional OpenTelemetry tracing (`server.tracing`: off | console | otlp).

Off by default: nothing is imported. On, it instruments the aiohttp server (a span
per request), the aiohttp client (our calls to CPOs and BAPs, with the trace
context propagated) and Redis (a span per command), and exports the spans to
the console or to an OTLP/HTTP collector (`server.tracing_endpoint`). The access
middleware (`bridge.metrics`) adds the protocols' correlation ids to the
request's span: OCPI `X-Request-ID` / `X-Correlation-ID`, Beckn
`transaction_id` / `message_id` / `bap_id`, so a trace is found from either
protocol's ids. The instrumentation packages are the `tracing` extra
(`pip install 'ocpi-beckn-bridge[tracing]'`).
"""

from __future__ import annotations

from typing import Any

from bridge.config import Settings

_ENABLED = False


def enabled() -> bool:
    return _ENABLED


def setup(settings: Settings, exporter: Any = None) -> bool:
    """Install the tracer provider and the server/client/Redis instrumentation once per
    process (before the app is built: every aiohttp Application made afterwards gets the
    tracing middleware first); False when tracing is off."""
    global _ENABLED
    if settings.tracing == "off" and exporter is None:
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    if not _ENABLED:
        provider = TracerProvider(resource=Resource.create(
            {"service.name": settings.tracing_service}))
        if exporter is not None:  # tests: spans handed over synchronously
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif settings.tracing == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(
                OTLPSpanExporter(endpoint=settings.tracing_endpoint or None)))
        else:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
        AioHttpServerInstrumentor().instrument()
        AioHttpClientInstrumentor().instrument()
        RedisInstrumentor().instrument()
        _ENABLED = True
    return True


def annotate(attributes: dict[str, Any]) -> None:
    """Set attributes on the current span (a no-op when tracing is off)."""
    if not _ENABLED:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None and value != "":
            span.set_attribute(key, str(value))
