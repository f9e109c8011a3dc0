"""Sinks that turn records into something people read: statistics and reports now;
OpenTelemetry, JSON, SARIF and trace files as they land. Each is imported on use, so
``import tracethread`` never pays for rich or the OpenTelemetry SDK."""
