"""Gateway (networking.istio.io v1, v1beta1, v1alpha3): the full field set.

Follows istio/api networking/v1alpha3/gateway.proto plus the checks of Istio's webhook:
at least one server, unique port names, TLS settings on HTTPS/TLS servers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, model_validator

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
    is_ip,
)
from plait.api.syntax import gateway_server_host
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
    tls_certificates: tuple[TLSCertificate, ...] = ()
    subject_alt_names: tuple[Str, ...] = ()
    verify_certificate_spki: tuple[Str, ...] = ()
    verify_certificate_hash: tuple[Str, ...] = ()
    min_protocol_version: TLSProtocol = "TLS_AUTO"
    max_protocol_version: TLSProtocol = "TLS_AUTO"
    cipher_suites: tuple[Str, ...] = ()
    insecure_skip_verify: Bool | None = None

    @model_validator(mode="after")
    def _certificates(self) -> ServerTLSSettings:
        has_files = bool(self.server_certificate) and bool(self.private_key)
        sources = [
            name
            for name, present in (
                ("credentialName", bool(self.credential_name)),
                ("credentialNames", bool(self.credential_names)),
                ("tlsCertificates", bool(self.tls_certificates)),
                ("serverCertificate", has_files),
            )
            if present
        ]
        if len(sources) > 1:
            raise ValueError(f"set only one of '{sources[0]}' and '{sources[1]}'")
        remote = bool(self.credential_name or self.credential_names)
        if self.mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") and not remote:
            self._files()
        return self

    def _files(self) -> None:
        """Istio's checks of certificates from files (SIMPLE, MUTUAL, OPTIONAL_MUTUAL)."""
        pairs = self.tls_certificates or (
            TLSCertificate(
                server_certificate=self.server_certificate, private_key=self.private_key
            ),
        )
        for pair in pairs:
            if not pair.server_certificate or not pair.private_key:
                raise ValueError(
                    f"{self.mode} TLS needs a certificate: set 'credentialName', or "
                    "'serverCertificate' and 'privateKey'"
                )
        if self.mode != "SIMPLE" and not self.ca_certificates:
            raise ValueError(f"{self.mode} TLS needs 'caCertificates' to verify clients")
        if self.ca_crl and self.mode == "SIMPLE":
            raise ValueError("'caCrl' needs MUTUAL TLS (Istio)")

    @model_validator(mode="after")
    def _istio_mutual(self) -> ServerTLSSettings:
        if self.mode == "ISTIO_MUTUAL":
            own = [
                name
                for name, on in (
                    ("serverCertificate", self.server_certificate),
                    ("privateKey", self.private_key),
                    ("caCertificates", self.ca_certificates),
                    ("credentialName", self.credential_name),
                    ("credentialNames", self.credential_names),
                    ("tlsCertificates", self.tls_certificates),
                )
                if on
            ]
            if own:
                raise ValueError(f"ISTIO_MUTUAL uses the mesh's certificates; remove '{own[0]}'")
        return self


class Server(IstioModel):
    port: GatewayPort
    bind: Str | None = None
    hosts: Annotated[
        tuple[Annotated[str, Strict(), AfterValidator(gateway_server_host)], ...],
        Field(min_length=1),
    ]
    tls: ServerTLSSettings | None = None
    default_endpoint: Str | None = None
    name: Str | None = None

    @model_validator(mode="after")
    def _tls(self) -> Server:
        if self.bind and self.bind.startswith("unix://"):
            raise ValueError(
                "'bind' to a unix socket needs port number 0 in Istio; plait serves "
                "gateway ports on TCP only: bind an IP address or leave 'bind' out"
            )
        if self.bind and not is_ip(self.bind):
            raise ValueError(f"'bind' {self.bind!r} is not an IP address")
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
