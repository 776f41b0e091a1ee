#!/usr/bin/env python3
"""A tiny upstream for the demo and the benchmarks: answers every request with JSON describing
what it received (origin, method, path, query, headers), like httpbin's /anything.

    echo_upstream.py [--port 8081] [--host 127.0.0.1]      (loopback unless told otherwise)
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            if name in headers:
                previous = headers[name]
                headers[name] = (previous if isinstance(previous, list) else [previous]) + [value]
            else:
                headers[name] = value
        body = json.dumps(
            {
                "origin": self.client_address[0],
                "method": self.command,
                "path": url.path,
                "query": url.query or None,
                "headers": headers,
            },
            indent=2,
        ).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, fmt, *args):
        print("%s %s" % (self.address_string(), fmt % args), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Echo)
    print(f"echo upstream on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
