"""A server-first TCP echo app for the transparent-mode TCP tests: on each connection it
greets first (`HELLO INSTANCE`, as Redis, MySQL or Postgres servers speak first), then
answers every line with `ECHO INSTANCE LINE`; it logs one line per connection."""

import os
import socket
import threading

INSTANCE = os.environ.get("PLAIT_INSTANCE", "echo")


def serve(conn: socket.socket, peer: tuple[str, int]) -> None:
    print(f"connection from {peer[0]}", flush=True)
    with conn:
        conn.sendall(f"HELLO {INSTANCE}\n".encode())
        for line in conn.makefile("rb"):
            conn.sendall(f"ECHO {INSTANCE} ".encode() + line)


def main() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", int(os.environ["PORT"])))
    server.listen(128)
    while True:
        conn, peer = server.accept()
        threading.Thread(target=serve, args=(conn, peer), daemon=True).start()


main()
