"""The report side: everything that works on the JSON report document rather than on the
record stream.

    json_report   the report built from the statistics sink, the findings and the graph;
                  its schema (docs/report.md) and writing it
    sarif         the report as SARIF 2.1.0 (code-scanning alerts)
    console       the report rendered for a terminal (rich)
    html          the report as one self-contained HTML page; cyclegraph draws a
                  finding's cycle in SVG (dot's layout or its own), htmltext escapes
                  what the page shows
    inputs        reports and baselines read back, validated before use
    merge         the lock-order graphs of several reports combined, their cycles found
    files         writing output files atomically; checking an output path up front

Nothing here imports the OpenTelemetry SDK; only ``console`` imports rich.
"""
