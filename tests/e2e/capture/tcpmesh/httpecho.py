"""An HTTP echo app for the headless-Service tests: every GET answers which instance
served it and the identity headers its sidecar passed on (`x-forwarded-client-cert`)."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INSTANCE = os.environ.get("PLAIT_INSTANCE", "web")


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps(
            {
                "instance": INSTANCE,
                "host": self.headers.get("host", ""),
                "xfcc": self.headers.get("x-forwarded-client-cert", ""),
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        print(format % args, flush=True)


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Echo).serve_forever()
