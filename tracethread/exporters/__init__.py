"""What the records become. Sinks of the record stream: ``stats`` (per-primitive
statistics), ``chrome_trace`` (a Chrome/Perfetto trace file), ``timeline`` (the longest
waits and holds, for the HTML report), ``otel`` (OpenTelemetry spans and metrics, and its
setup). The report document built at the end and everything done with it: ``report``
(JSON report, SARIF, the rich console view, the HTML page, reading reports back, merging
them). They use the core through ``tracethread._core.api`` only
(tests/test_layers.py). Each is imported on use, so ``import tracethread`` never pays for
rich or the OpenTelemetry SDK."""
