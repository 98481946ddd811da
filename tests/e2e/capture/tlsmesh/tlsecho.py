"""A TLS echo app for the transparent-mode `tls` route tests: it serves the certificate
in `tls/` (which the test makes) on $PORT and answers each connection with one line,
`INSTANCE SNI`, the server name the client asked for, then closes."""

import os
import socket
import ssl
import threading

INSTANCE = os.environ.get("PLAIT_INSTANCE", "tlsecho")
SNI: dict[int, str] = {}  # id of the TLS socket → the name its client asked for


def remember_sni(sock: ssl.SSLObject, name: str, _: ssl.SSLContext) -> None:
    SNI[id(sock)] = name or "-"


def serve(conn: ssl.SSLSocket) -> None:
    with conn:
        conn.sendall(f"{INSTANCE} {SNI.pop(id(conn), '-')}\n".encode())


def main() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain("tls/server.pem", "tls/server.key")
    context.sni_callback = remember_sni
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", int(os.environ["PORT"])))
    server.listen(128)
    while True:
        conn, _ = server.accept()
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            print(f"handshake failed: {exc}", flush=True)
            conn.close()
            continue
        threading.Thread(target=serve, args=(tls,), daemon=True).start()


main()
