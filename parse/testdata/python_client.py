"""Serves a realistic OpenMetrics body from the official Python client.

Regenerate testdata/python_client.om.txt and python_client.prom with:

    /usr/bin/python3 testdata/python_client.py 19101 &
    curl -s -H 'Accept: application/openmetrics-text; version=1.0.0' http://127.0.0.1:19101/ > testdata/python_client.om.txt
    curl -s -H 'Accept: text/plain' http://127.0.0.1:19101/ > testdata/python_client.prom
    kill %1

(Debian package python3-prometheus-client.) Values are fixed so the bodies
only change in process_* and _created values when regenerated.
"""
import sys
import time

from prometheus_client import (CollectorRegistry, Counter, Enum, Gauge, Histogram, Info,
                               Summary, start_http_server)
from prometheus_client import platform_collector, process_collector, gc_collector

reg = CollectorRegistry()
process_collector.ProcessCollector(registry=reg)
platform_collector.PlatformCollector(registry=reg)
gc_collector.GCCollector(registry=reg)

req = Counter('http_requests', 'HTTP requests served.', ['method', 'path', 'code'], registry=reg)
req.labels('GET', '/api/v1/query', '200').inc(1027, exemplar={'trace_id': 'KOO5S4vxi0o', 'span_id': 'oHg5SJYRHA0'})
req.labels('POST', '/api/v1/write', '204').inc(98213)
req.labels('GET', '/weird "quoted" \\ path\nwith newline', '404').inc(3)
req.labels('GET', '/unicode/日本語/émoji/🚀', '200').inc(1.5)

lat = Histogram('http_request_duration_seconds', 'Request latency.', ['handler'],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=reg)
for i, v in enumerate([0.003, 0.02, 0.07, 0.3, 0.9, 4.0, 12.0]):
    lat.labels('/api/v1/query').observe(v, exemplar={'trace_id': 'tr%03d' % i})
lat.labels('/metrics').observe(0.0004)

sz = Summary('rpc_payload_bytes', 'RPC payload sizes.', ['service'], registry=reg)
for v in (512, 1024, 4096):
    sz.labels('ingester').observe(v)

temp = Gauge('room_temperature_celsius', 'Temperature (may be negative or huge).', ['room'], unit='celsius', registry=reg)
temp.labels('lab').set(-12.5)
temp.labels('server-room').set(1.7976931348623157e308)
temp.labels('void').set(float('nan'))
temp.labels('tiny').set(1e-300)
temp.labels('neg_zero').set(-0.0)
temp.labels('inf').set(float('inf'))

Info('build', 'Build information.', registry=reg).info({'version': '1.2.3', 'revision': 'abc"def', 'branch': 'main'})
Enum('task_state', 'Task state.', states=['starting', 'running', 'stopped'], registry=reg).state('running')

start_http_server(int(sys.argv[1]), addr='127.0.0.1', registry=reg)
while True:
    time.sleep(3600)
