"""Gateway (networking.istio.io v1, v1beta1, v1alpha3): the full field set.

Follows istio/api networking/v1alpha3/gateway.proto plus the checks of Istio's webhook:
at least one server, unique port names, TLS settings on HTTPS/TLS servers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from plait.api.common import (
    Bool,
    IstioModel,
    NonEmptyStr,
    ObjectMeta,
    PortNumber,
    Protocol,
    SelectorLabels,
    Str,
    first_repeated,
)
from plait.api.virtualservice import NetworkingVersion

ServerTLSMode = Literal[
    "PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"
]
TLSProtocol = Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]


class GatewayPort(IstioModel):
    number: PortNumber
    protocol: Protocol
    name: NonEmptyStr
    target_port: PortNumber | None = None


class TLSCertificate(IstioModel):
    server_certificate: Str | None = None
    private_key: Str | None = None
    ca_certificates: Str | None = None


class ServerTLSSettings(IstioModel):
    https_redirect: Bool = False
    mode: ServerTLSMode = "PASSTHROUGH"
    server_certificate: Str | None = None
    private_key: Str | None = None
    ca_certificates: Str | None = None
    ca_crl: Str | None = None
    credential_name: Str | None = None
    credential_names: Annotated[tuple[Str, ...], Field(max_length=2)] = ()
    ca_cert_credential_name: Str | None = None
    tls_certificates: Annotated[tuple[TLSCertificate, ...], Field(max_length=2)] = ()
    subject_alt_names: tuple[Str, ...] = ()
    verify_certificate_spki: tuple[Str, ...] = ()
    verify_certificate_hash: tuple[Str, ...] = ()
    min_protocol_version: TLSProtocol = "TLS_AUTO"
    max_protocol_version: TLSProtocol = "TLS_AUTO"
    cipher_suites: tuple[Str, ...] = ()
    insecure_skip_verify: Bool | None = None

    @model_validator(mode="after")
    def _certificates(self) -> ServerTLSSettings:
        sources = [
            name
            for name, present in (
                ("credentialName", self.credential_name is not None),
                ("credentialNames", bool(self.credential_names)),
                ("tlsCertificates", bool(self.tls_certificates)),
            )
            if present
        ]
        if len(sources) > 1:
            raise ValueError(f"set only one of '{sources[0]}' and '{sources[1]}'")
        has_files = self.server_certificate is not None and self.private_key is not None
        if self.mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") and not (sources or has_files):
            raise ValueError(
                f"{self.mode} TLS needs a certificate: set 'credentialName', or "
                "'serverCertificate' and 'privateKey'"
            )
        if self.mode == "MUTUAL" and not sources and self.ca_certificates is None:
            raise ValueError("MUTUAL TLS needs 'caCertificates' to verify clients")
        return self


class Server(IstioModel):
    port: GatewayPort
    bind: Str | None = None
    hosts: Annotated[tuple[NonEmptyStr, ...], Field(min_length=1)]
    tls: ServerTLSSettings | None = None
    default_endpoint: Str | None = None
    name: Str | None = None

    @model_validator(mode="after")
    def _tls(self) -> Server:
        secure = self.port.protocol.upper() in ("HTTPS", "TLS")
        if secure and self.tls is None:
            raise ValueError(f"a {self.port.protocol} server needs 'tls' settings")
        if not secure and self.tls is not None:
            extra = self.tls.model_fields_set - {"https_redirect", "mode"}
            if extra or self.tls.mode != "PASSTHROUGH":
                raise ValueError(
                    f"a plain-text {self.port.protocol} server can only set 'tls.httpsRedirect'; "
                    "use protocol HTTPS to terminate TLS"
                )
        return self


class GatewaySpec(IstioModel):
    servers: Annotated[tuple[Server, ...], Field(min_length=1)]
    selector: SelectorLabels = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_port_names(self) -> GatewaySpec:
        names = [s.port.name for s in self.servers]
        repeated = first_repeated(names)
        if repeated is not None:
            raise ValueError(f"port name '{repeated}' is used by more than one server")
        return self


class Gateway(IstioModel):
    """`kind: Gateway`: ports a gateway proxy listens on, and the hosts it serves there."""

    api_version: NetworkingVersion
    kind: Literal["Gateway"]
    metadata: ObjectMeta
    spec: GatewaySpec
    status: dict[str, object] | None = None
