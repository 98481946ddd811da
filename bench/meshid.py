"""Mesh identity for the benchmarks, set up the way `plait up` sets it up.

`plait up` splits identity between two processes, and so can the bench:

* the *issuer* side (`plait up` itself, the local "kubelet"): `LocalIdentity` holds the
  key that signs workload tokens, writes one token per proxy and builds each proxy's
  `SidecarAgent` (key and CSR in memory, certificate from the CA over HTTPS, SDS on a
  Unix socket, then Envoy) — `agent()`;
* the *CA* side (the control plane): `MeshSecurity`, the CA with its HTTPS API and the
  mTLS credentials of the ADS port, which admits a proxy only as the workload its
  certificate names (`xds_tls()`).

Both sides find each other through one state directory (tokens/issuer-public.pem, ca/
root-cert.pem), as `plait up` and its control plane do through MESHDIR/.plait. The
data-plane benchmark runs both in its own process; the convergence benchmark's real
Envoys run the issuer side in the child process that hosts them.

`static_cert()` is the bench's own: a certificate from the same CA, written to files,
for the hand-written Envoys (static TLS, no SDS), so that their mTLS is the same TLS as
the sidecars' — same CA, same key type (EC P-256), same chain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from plait.agent import SidecarAgent, SidecarOptions, SupervisorOptions
from plait.agent.identity import make_csr, new_key
from plait.api import Loaded
from plait.ca import CertificateAuthority
from plait.ca.files import write_private
from plait.controlplane.security import MeshSecurity, SecurityOptions, workload_check
from plait.local.identity import LocalIdentity
from plait.model.identity import SpiffeId
from plait.model.proxy import Proxy
from plait.xds.auth import ServerTls

HOST = "127.0.0.1"
TRUST_DOMAIN = "cluster.local"
CERT_TTL = dt.timedelta(hours=24)  # plait's default: nothing rotates during a benchmark


def issuer(state_dir: Path) -> LocalIdentity:
    """The token issuer of `state_dir` (made on first use, loaded afterwards)."""
    return LocalIdentity(state_dir, TRUST_DOMAIN, CERT_TTL)


def security(identity: LocalIdentity) -> MeshSecurity:
    """The control plane's CA (in identity's ca/ directory), trusting its token issuer."""
    opts = SecurityOptions(
        ca_dir=identity.ca_dir, token_public_key=identity.public_key, workload_ttl=CERT_TTL
    )
    return MeshSecurity(opts, TRUST_DOMAIN, HOST)


class AdmitAll:
    """The scale bench's admission: `authorize` has already checked that the node claims
    the namespace and service account its certificate names; the synthetic mesh has no
    Deployments for local mode's admission (`DeploymentAdmission`) to check the rest
    against, so the rest is believed."""

    def admit(self, identity: SpiffeId, proxy: Proxy) -> str | None:
        return None


def proxy_certs(
    ca: CertificateAuthority, proxies: Iterable[Proxy], directory: Path
) -> dict[str, CertFiles]:
    """A workload certificate per proxy (`static_cert`), for simulated proxies that speak
    mTLS to the ADS port: by node id; proxies with the same identity share one."""
    made: dict[SpiffeId, CertFiles] = {}
    out = {}
    for p in proxies:
        identity = SpiffeId(TRUST_DOMAIN, p.namespace, p.service_account)
        if identity not in made:
            made[identity] = static_cert(ca, identity, directory / p.namespace)
        out[p.id] = made[identity]
    return out


def xds_tls(sec: MeshSecurity, config: Callable[[], Sequence[Loaded]]) -> ServerTls:
    """mTLS on the ADS port with the control plane's own admission check."""
    return sec.xds_tls(workload_check(config))


def agent(
    identity: LocalIdentity,
    proxy: Proxy,
    *,
    ca_url: str,
    run_dir: Path,
    xds_port: int,
    name: str,
    supervisor: SupervisorOptions,
    xds_over_tls: bool = True,
) -> SidecarAgent:
    """One proxy's agent, as `plait up` builds it (LocalMesh._agent): its own token,
    key, certificate and SDS socket, Envoy with plait's bootstrap."""
    instance = proxy.id.split("~", 1)[1].rsplit(".", 1)[0]
    token = identity.token_file(instance, proxy.namespace, proxy.service_account)
    return SidecarAgent(
        SidecarOptions(
            proxy=proxy,
            run_dir=run_dir,
            ca=identity.ca_options(proxy, token, ca_url),
            sds_socket=identity.sds_socket(name),
            xds_host=HOST,
            xds_port=xds_port,
            xds_tls=xds_over_tls,
            name=name,
            supervisor=supervisor,
        )
    )


@dataclass(frozen=True)
class CertFiles:
    """PEM files for a static TLS context: chain (leaf first), key (0600), CA roots."""

    chain: Path
    key: Path
    roots: Path
    identity: SpiffeId


def static_cert(ca: CertificateAuthority, identity: SpiffeId, directory: Path) -> CertFiles:
    """A workload certificate for `identity` signed by `ca`, with an EC P-256 key made
    here, as an agent makes its own; written to `directory` for a static Envoy config."""
    key = new_key()
    issued = ca.sign(make_csr(key, identity), identity)
    stem = directory / identity.service_account
    files = CertFiles(
        Path(f"{stem}.chain.pem"), Path(f"{stem}.key.pem"), Path(f"{stem}.roots.pem"), identity
    )
    directory.mkdir(parents=True, exist_ok=True)
    files.chain.write_text("".join(issued.chain))
    files.roots.write_text("".join(ca.trust_bundle()))
    write_private(
        files.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return files
