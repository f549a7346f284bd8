"""A real OTLP/HTTP receiver in its own process: oteltest's otelsink, bound to 127.0.0.1.

``python otlp_sink.py PORT OUT.jsonl`` writes every received ExportTraceServiceRequest as a
JSON line and prints ``ready`` once it listens. otelsink binds every interface by default;
its HTTPServer is swapped for one on loopback (see ENV-FACTS.md).
"""

import json
import logging
import sys
import time
from http.server import HTTPServer

import oteltest.sink as sink
from google.protobuf.json_format import MessageToDict
from oteltest.sink.handler import RequestHandler


class LoopbackServer(HTTPServer):
    def __init__(self, address, handler):
        super().__init__(("127.0.0.1", address[1]), handler)


class Writer(RequestHandler):
    def __init__(self, path):
        self.path = path

    def handle_trace(self, request, headers):
        with open(self.path, "a") as f:
            f.write(json.dumps(MessageToDict(request)) + "\n")

    def handle_metrics(self, request, headers):
        pass

    def handle_logs(self, request, headers):
        pass


if __name__ == "__main__":
    sink.HTTPServer = LoopbackServer
    port, out = int(sys.argv[1]), sys.argv[2]
    server = sink.HttpSink(Writer(out), logging.getLogger("otelsink"), port=port, daemon=True)
    server.start()
    time.sleep(0.3)
    print("ready", flush=True)
    while True:
        time.sleep(3600)
