"""Envoy matchers in Istio's shapes (pilot/pkg/security/authz/matcher, model/*.go).

Istio's value forms everywhere: exact, `prefix*`, `*suffix`, and `*` alone (present: any
non-empty value). JWT matchers read the payload `jwt_authn` leaves in dynamic metadata
(translate/jwt.py). Pure helpers for translate/rbac.py.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from envoy.config.core.v3 import address_pb2, extension_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.rbac.v3.rbac_pb2 import Permission, Principal
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from envoy.type.matcher.v3 import metadata_pb2, regex_pb2, string_pb2, value_pb2
from google.protobuf import wrappers_pb2

from plait.translate.jwt import JWT_FILTER, PAYLOAD_KEY


def quote_meta(text: str) -> str:
    """Go's regexp.QuoteMeta: escape exactly the RE2 metacharacters."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def regex(pattern: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))


def string_match(value: str, prefix: str = "") -> string_pb2.StringMatcher:
    """Istio's value forms: `*` (present: `.+`), `*suffix`, `prefix*`, exact; `prefix` is
    prepended (e.g. `spiffe://`) except to `*`."""
    if value == "*":
        return regex(".+")
    if value.startswith("*"):
        if not prefix:
            return string_pb2.StringMatcher(suffix=value[1:])
        return regex(quote_meta(prefix) + ".*" + quote_meta(value[1:]))
    if value.endswith("*"):
        return string_pb2.StringMatcher(prefix=prefix + value[:-1])
    return string_pb2.StringMatcher(exact=prefix + value)


def header_match(name: str, value: str, ignore_case: bool = False) -> rc.HeaderMatcher:
    """Istio's HeaderMatcher/HostMatcher: `*` is presence, else exact/prefix/suffix."""
    if value == "*":
        return rc.HeaderMatcher(name=name, present_match=True)
    if value.startswith("*"):
        m = string_pb2.StringMatcher(suffix=value[1:], ignore_case=ignore_case)
    elif value.endswith("*"):
        m = string_pb2.StringMatcher(prefix=value[:-1], ignore_case=ignore_case)
    else:
        m = string_pb2.StringMatcher(exact=value, ignore_case=ignore_case)
    return rc.HeaderMatcher(name=name, string_match=m)


def jwt_metadata(path: Sequence[str], value: value_pb2.ValueMatcher) -> Principal:
    segments = [metadata_pb2.MetadataMatcher.PathSegment(key=k) for k in (PAYLOAD_KEY, *path)]
    matcher = metadata_pb2.MetadataMatcher(filter=JWT_FILTER, path=segments, value=value)
    # `sourced_metadata` (dynamic metadata) replaces the deprecated `metadata` Istio uses
    return Principal(sourced_metadata=rbac_pb2.SourcedMetadata(metadata_matcher=matcher))


def string_value(m: string_pb2.StringMatcher) -> value_pb2.ValueMatcher:
    return value_pb2.ValueMatcher(string_match=m)


def values_or(values: Sequence[str]) -> value_pb2.ValueMatcher:
    matchers = [string_value(string_match(v)) for v in values]
    if len(matchers) == 1:
        return matchers[0]
    return value_pb2.ValueMatcher(or_match=value_pb2.OrMatcher(value_matchers=matchers))


def claim(path: Sequence[str], values: Sequence[str]) -> Principal:
    """A claim that is a string equal to a value, or a list holding one (Istio's
    MetadataListValueMatcher with extended JWT matching)."""
    value = values_or(values)
    either = value_pb2.ValueMatcher(
        or_match=value_pb2.OrMatcher(
            value_matchers=[
                value_pb2.ValueMatcher(list_match=value_pb2.ListMatcher(one_of=value)),
                value,
            ]
        )
    )
    return jwt_metadata(path, either)


# --- boolean combinators ----------------------------------------------------------------


def p_or(ids: list[Principal]) -> Principal:
    return Principal(or_ids=Principal.Set(ids=ids))


def p_and(ids: list[Principal]) -> Principal:
    return Principal(and_ids=Principal.Set(ids=ids))


def p_not(p: Principal) -> Principal:
    return Principal(not_id=p)


def perm_or(rules: list[Permission]) -> Permission:
    return Permission(or_rules=Permission.Set(rules=rules))


def perm_and(rules: list[Permission]) -> Permission:
    return Permission(and_rules=Permission.Set(rules=rules))


def perm_not(p: Permission) -> Permission:
    return Permission(not_rule=p)


def authenticated(m: string_pb2.StringMatcher) -> Principal:
    return Principal(authenticated=Principal.Authenticated(principal_name=m))


def cidr(value: str) -> address_pb2.CidrRange:
    net = ipaddress.ip_network(value, strict=False)
    return address_pb2.CidrRange(
        address_prefix=str(net.network_address),
        prefix_len=wrappers_pb2.UInt32Value(value=net.prefixlen),
    )


ANY_VALUE = regex(".+")


def request_principal(value: str) -> Principal:
    """Istio's requestPrincipalGenerator: `iss/sub` split at the last `/`."""
    iss, found, sub = value.rpartition("/")
    if not found:
        iss, sub = value, ""
    if value == "*":
        m_iss, m_sub = ANY_VALUE, ANY_VALUE
    elif value.startswith("*"):
        if found:
            m_iss = ANY_VALUE if iss == "*" else string_pb2.StringMatcher(suffix=iss[1:])
            m_sub = string_pb2.StringMatcher(exact=sub)
        else:
            m_iss, m_sub = ANY_VALUE, string_pb2.StringMatcher(suffix=value[1:])
    elif value.endswith("*"):
        if found:
            m_iss = string_pb2.StringMatcher(exact=iss)
            m_sub = ANY_VALUE if sub == "*" else string_pb2.StringMatcher(prefix=sub[:-1])
        else:
            m_iss, m_sub = string_pb2.StringMatcher(prefix=value[:-1]), ANY_VALUE
    else:
        m_iss, m_sub = string_pb2.StringMatcher(exact=iss), string_pb2.StringMatcher(exact=sub)
    return p_and(
        [
            jwt_metadata(["iss"], string_value(m_iss)),
            jwt_metadata(["sub"], string_value(m_sub)),
        ]
    )


def trust_domain(value: str) -> Principal:
    """Istio's srcTrustDomainGenerator: the trust domain part of the peer's SPIFFE ID."""
    if value == "*":
        m = string_pb2.StringMatcher(prefix="spiffe://")
    elif "*" not in value:
        m = string_pb2.StringMatcher(prefix=f"spiffe://{value}/")
    else:
        head, _, tail = value.partition("*")
        m = regex(f"spiffe://{quote_meta(head)}[^/]*{quote_meta(tail)}/.*")
    return authenticated(m)


def path_template(value: str) -> Permission:
    """Istio's path templates (`{*}` one segment, `{**}` any) as Envoy's uri_template
    matcher, where they are written `*` and `**`."""
    template = value.replace("{**}", "**").replace("{*}", "*")
    config = extension_pb2.TypedExtensionConfig(name="uri-template")
    config.typed_config.Pack(uri_template_match_pb2.UriTemplateMatchConfig(path_template=template))
    return Permission(uri_template=config)


def filter_metadata(filter_name: str, key: str, value: str) -> Permission:
    """Istio's `experimental.envoy.filters.FILTER[KEY]`: a string in FILTER's dynamic
    metadata at KEY; a value written `[v]` matches a list holding `v`."""
    if value.startswith("[") and value.endswith("]"):
        inner = string_value(string_match(value[1:-1]))
        matcher = value_pb2.ValueMatcher(list_match=value_pb2.ListMatcher(one_of=inner))
    else:
        matcher = string_value(string_match(value))
    segment = metadata_pb2.MetadataMatcher.PathSegment(key=key)
    m = metadata_pb2.MetadataMatcher(filter=filter_name, path=[segment], value=matcher)
    return Permission(sourced_metadata=rbac_pb2.SourcedMetadata(metadata_matcher=m))
