"""CORS: a CorsPolicy per route, for the idle CORS filter every HCM carries.

Istio's TranslateCORSPolicy: `allowOrigins` are string matches (the deprecated
`allowOrigin` exact strings); methods, headers and exposed headers are joined with
commas; `maxAge` in whole seconds. Preflights that match no allowed origin are forwarded
to the app unless `unmatchedPreflights: IGNORE` (Istio's default since Envoy 1.30).
"""

from __future__ import annotations

from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import wrappers_pb2

from plait.api.virtualservice import CorsPolicy
from plait.translate import percent
from plait.translate.match import string_matcher


def cors_policy(policy: CorsPolicy) -> cors_pb2.CorsPolicy:
    out = cors_pb2.CorsPolicy(
        allow_methods=",".join(policy.allow_methods),
        allow_headers=",".join(policy.allow_headers),
        expose_headers=",".join(policy.expose_headers),
        forward_not_matching_preflights=wrappers_pb2.BoolValue(
            value=policy.unmatched_preflights != "IGNORE"
        ),
        filter_enabled=percent.runtime(percent.of_int(100)),
    )
    if policy.allow_origins:
        out.allow_origin_string_match.extend(string_matcher(m) for m in policy.allow_origins)
    else:
        out.allow_origin_string_match.extend(
            string_pb2.StringMatcher(exact=o) for o in policy.allow_origin
        )
    if policy.allow_credentials is not None:
        out.allow_credentials.value = policy.allow_credentials
    if policy.max_age is not None:
        out.max_age = str(policy.max_age.seconds_nanos()[0])
    return out
