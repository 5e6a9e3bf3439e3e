#!/usr/bin/env python3
"""A restpipe handler written in Python: a small HTTP service that a node
serves through a forward route.

    python3 examples/python-handler/handler.py --port 9000
    restpipe client ... --forward py=http://127.0.0.1:9000

Then, from the server node:

    curl 127.0.0.1:8080/client/c1/py/hello?name=ada       # GET  /hello?name=ada
    curl --data 'count my words' 127.0.0.1:8080/client/c1/py/words   # POST /words

The path after the route's noun ("py") is the path this service sees.
restpipe sets X-Restpipe-Peer (the calling node's certificate name, which
this service may trust), X-Forwarded-For (that node's tunnel address) and
X-Forwarded-Proto, after removing any copy the caller sent.
Only the standard library is used.
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, value):
        body = (json.dumps(value) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/hello":
            name = parse_qs(url.query).get("name", ["stranger"])[0]
            self.reply(200, {
                "greeting": f"hello {name}, from Python",
                "caller": self.headers.get("X-Forwarded-For"),
                "peer": self.headers.get("X-Restpipe-Peer"),
            })
        else:
            self.reply(404, {"error": f"no {url.path} here", "code": "not_found"})

    def do_POST(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode("utf-8", "replace")
        if url.path == "/words":
            self.reply(200, {"words": len(text.split()), "chars": len(text)})
        else:
            self.reply(404, {"error": f"no {url.path} here", "code": "not_found"})

    def log_message(self, fmt, *args):
        pass  # quiet; restpipe logs each event


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    args = ap.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"python handler on http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
