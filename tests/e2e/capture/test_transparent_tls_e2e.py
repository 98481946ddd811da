"""VirtualService `tls` routes under `plait up --transparent` (root only): a client app in
its pod opens TLS to `tlsecho:8443` (`tlsmesh/`) with different SNI names, and the
sidecar picks the destination by the SNI alone: one name per version, a wildcard name
split 25/75, and any other name to the service itself. The client verifies the app's own
certificate, so the app's TLS is end to end (passed through, never terminated), and the
sidecars still carry it over mesh mTLS (STRICT)."""

from __future__ import annotations

import datetime
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from capturekit import ROOT_ONLY, run
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from meshkit import Mesh
from podmesh import diagnose_on_failure, pod_netns, stats, transparent_mesh

pytestmark = [ROOT_ONLY]

MESH = Path(__file__).parent / "tlsmesh"
NAMES = ("*.tlsecho.test", "*.split.tlsecho.test", "tlsecho.default.svc.cluster.local")

CLIENT = r"""
import json, socket, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[1])
out = []
for _ in range(int(sys.argv[3])):
    try:
        with socket.create_connection(("tlsecho", 8443), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=sys.argv[2]) as s:
                out.append(s.makefile("rb").readline().decode().strip())
    except OSError as exc:
        out.append(repr(exc))
print(json.dumps(out))
"""


def write_certificates(tls: Path) -> None:
    """A CA and the apps' server certificate for NAMES, in `tls/` of the mesh directory."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tlsecho test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tlsecho")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in NAMES]), False)
        .sign(ca_key, hashes.SHA256())
    )
    tls.mkdir()
    (tls / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tls / "server.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tls / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def tls_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    dst = tmp_path_factory.mktemp("tls") / "mesh"
    with transparent_mesh(MESH, dst, lambda root: write_certificates(root / "tls")) as mesh:
        yield mesh


def answers(mesh: Mesh, sni: str, count: int) -> list[str]:
    """`INSTANCE SNI` lines of `count` TLS connections from the client pod, each verifying
    the app's certificate for `sni`."""
    argv = ["ip", "netns", "exec", pod_netns(mesh.root, "client-0"), sys.executable]
    ca = str(mesh.root / "tls" / "ca.pem")
    done = run([*argv, "-c", CLIENT, ca, sni, str(count)])
    got: list[str] = json.loads(done.stdout)
    return got


@pytest.fixture(autouse=True)
def _mesh_diagnostics(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    diagnose_on_failure(request, "tls_mesh")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_an_sni_name_picks_its_version(tls_mesh: Mesh, version: str) -> None:
    sni = f"{version}.tlsecho.test"
    got = answers(tls_mesh, sni, 20)
    # the app saw the SNI (TLS end to end) and every connection went to that version
    assert got == [f"tlsecho-{version}-0 {sni}"] * 20, got


def test_a_wildcard_sni_rule_splits_by_weight(tls_mesh: Mesh) -> None:
    n = 200
    got = Counter(answers(tls_mesh, "a.split.tlsecho.test", n))
    assert set(got) == {f"tlsecho-{v}-0 a.split.tlsecho.test" for v in ("v1", "v2")}, got
    # 25/75: v1 count is Binomial(200, 0.25), sd ≈ 6.1; ±4 sd
    assert 26 <= got["tlsecho-v1-0 a.split.tlsecho.test"] <= 74, got


def test_any_other_sni_goes_to_the_service(tls_mesh: Mesh) -> None:
    sni = "tlsecho.default.svc.cluster.local"
    got = Counter(answers(tls_mesh, sni, 40))
    # both versions serve the service; P(one of them gets none of 40) < 1e-11
    assert set(got) == {f"tlsecho-v1-0 {sni}", f"tlsecho-v2-0 {sni}"}, got


def test_the_apps_tls_crosses_the_sidecars_inside_mesh_mtls(tls_mesh: Mesh) -> None:
    def handshakes() -> tuple[int, int]:
        client = stats(tls_mesh, "client", r"^cluster\.outbound\|8443\|.*ssl\.handshake$")
        server = sum(
            sum(stats(tls_mesh, w, r"^listener\.0\.0\.0\.0_15006\.ssl\.handshake$").values())
            for w in ("tlsecho-v1", "tlsecho-v2")
        )
        return sum(client.values()), server

    before = handshakes()
    assert answers(tls_mesh, "v1.tlsecho.test", 5) == ["tlsecho-v1-0 v1.tlsecho.test"] * 5
    after = handshakes()
    assert after[0] - before[0] >= 5 and after[1] - before[1] >= 5, (before, after)
