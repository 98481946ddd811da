"""A server outside the mesh for the DNS ServiceEntry test: on 9000 (the ServiceEntry's
port) and on $PORT it greets each connection with `HELLO INSTANCE` and closes it."""

import os
import socket
import threading

INSTANCE = os.environ.get("PLAIT_INSTANCE", "legacy")


def serve(server: socket.socket) -> None:
    while True:
        conn, _ = server.accept()
        with conn:
            conn.sendall(f"HELLO {INSTANCE}\n".encode())


def listen(port: int) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(64)
    return server


threading.Thread(target=serve, args=(listen(9000),), daemon=True).start()
serve(listen(int(os.environ["PORT"])))
