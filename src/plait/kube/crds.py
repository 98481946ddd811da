"""CustomResourceDefinitions generated from plait's own API models (one source of truth).

Each kind in `api.kinds.KINDS` that Kubernetes does not define itself becomes a CRD whose
OpenAPI v3 schema is the pydantic model's JSON schema made *structural*, as the API server
requires (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema):
every `$ref` inlined, a `type` on every node, no `anyOf` but int-or-string, no
`additionalProperties: false` (unknown fields are pruned, and `kubectl apply` reports them
under strict field validation), no JSON-Schema-only keywords. Optional fields come out as
plain properties: a null sent for one is pruned by the API server before validation.

The schema holds what a schema can say (types, enums, ranges, required fields); the cross-
field rules plait checks itself (oneofs, references) stay in the models and are reported
in the resource's status. Served versions and the storage version follow Istio's own CRDs
(manifests/charts/base/files/crd-all.gen.yaml); names, short names, categories and printer
columns too. `python -m plait.kube.crds` prints the YAML that `charts/base` ships.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import yaml

from plait.api.kinds import KINDS, group_of

Schema = dict[str, Any]

_KEEP = frozenset(
    [
        "type",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "pattern",
    ]
)
_DROP = frozenset(["title", "description", "default", "examples", "propertyNames"])
"""Dropped: descriptions are the models' docstrings, written for plait's developers."""


@dataclass(frozen=True)
class Column:
    """An `additionalPrinterColumns` entry (what `kubectl get` shows)."""

    name: str
    json_path: str
    description: str
    type: str = "string"


AGE = Column("Age", ".metadata.creationTimestamp", "Time since the object was created.", "date")


@dataclass(frozen=True)
class CrdNames:
    """How Kubernetes names a kind: plural, short names, categories, printer columns."""

    plural: str
    short_names: tuple[str, ...] = ()
    columns: tuple[Column, ...] = (AGE,)
    storage: str = "v1"


NAMES: dict[str, CrdNames] = {
    "VirtualService": CrdNames(
        "virtualservices",
        ("vs",),
        (
            Column("Gateways", ".spec.gateways", "The gateways that apply these routes."),
            Column("Hosts", ".spec.hosts", "The destination hosts of the traffic."),
            AGE,
        ),
    ),
    "DestinationRule": CrdNames(
        "destinationrules",
        ("dr",),
        (Column("Host", ".spec.host", "The service the rules apply to."), AGE),
    ),
    "Gateway": CrdNames("gateways", ("gw",)),
    "ServiceEntry": CrdNames(
        "serviceentries",
        ("se",),
        (
            Column("Hosts", ".spec.hosts", "The hosts of the ServiceEntry."),
            Column("Location", ".spec.location", "MESH_EXTERNAL or MESH_INTERNAL."),
            Column("Resolution", ".spec.resolution", "NONE, STATIC or DNS."),
            AGE,
        ),
    ),
    "Sidecar": CrdNames("sidecars"),
    "AuthorizationPolicy": CrdNames(
        "authorizationpolicies",
        ("ap",),
        (Column("Action", ".spec.action", "The operation to take."), AGE),
    ),
    "PeerAuthentication": CrdNames(
        "peerauthentications",
        ("pa",),
        (Column("Mode", ".spec.mtls.mode", "The mTLS mode of peer authentication."), AGE),
    ),
    "RequestAuthentication": CrdNames("requestauthentications", ("ra",)),
    "Telemetry": CrdNames("telemetries", ("telemetry",)),
    "RateLimit": CrdNames(
        "ratelimits",
        ("rl",),
        (Column("Service", ".spec.targetRef.name", "The Service whose workloads limit."), AGE),
        storage="v1alpha1",
    ),
}
"""Every kind that becomes a CRD (Service, Deployment and ConfigMap are Kubernetes' own)."""

STATUS_SCHEMA: Schema = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "conditions": {
            "type": "array",
            "description": "Current service state of the resource.",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "status": {"type": "string"},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                    "lastProbeTime": {"type": "string", "format": "date-time"},
                    "lastTransitionTime": {"type": "string", "format": "date-time"},
                    "observedGeneration": {"x-kubernetes-int-or-string": True},
                },
            },
        },
        "observedGeneration": {"x-kubernetes-int-or-string": True},
        "validationMessages": {
            "type": "array",
            "description": "Errors and warnings plait found in the resource.",
            "items": {
                "type": "object",
                "properties": {
                    "documentationUrl": {"type": "string"},
                    "level": {"type": "string", "enum": ["UNKNOWN", "ERROR", "WARNING", "INFO"]},
                    "type": {
                        "type": "object",
                        "properties": {"code": {"type": "string"}, "name": {"type": "string"}},
                    },
                },
            },
        },
    },
}
"""The status shape of Istio's CRDs (istio.meta.v1alpha1.IstioStatus), which plait writes."""


class SchemaError(ValueError):
    """A model's JSON schema has a construct that a structural schema cannot express."""


def structural(
    node: Schema, defs: dict[str, Schema], path: str, seen: tuple[str, ...] = ()
) -> Schema:
    """`node` (a pydantic JSON schema) as a structural schema, with `$ref`s from `defs` inlined."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            raise SchemaError(f"{path}: recursive type {name} cannot be a structural schema")
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return structural(merged, defs, path, (*seen, name))
    if "anyOf" in node:
        return _any_of(node, defs, path, seen)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {
                name: structural(sub, defs, f"{path}.{name}", seen) for name, sub in value.items()
            }
        elif key == "items":
            out[key] = structural(value, defs, f"{path}[]", seen)
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = structural(value, defs, f"{path}.*", seen)
            # False: unknown fields are pruned by the API server (and refused by strict apply).
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            # JSON Schema's bound (a number) is OpenAPI v3.0's boolean next to minimum/maximum
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key in _KEEP:
            out[key] = value
        else:
            raise SchemaError(f"{path}: JSON schema keyword '{key}' has no structural form")
    if "enum" in out and "type" not in out:
        out["type"] = _type_of(out["enum"], path)
    if "type" not in out and "x-kubernetes-preserve-unknown-fields" not in out:
        raise SchemaError(f"{path}: no type")
    return out


def _any_of(node: Schema, defs: dict[str, Schema], path: str, seen: tuple[str, ...]) -> Schema:
    choices = [c for c in node["anyOf"] if c.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if len(choices) == 1:
        return structural({**choices[0], **rest}, defs, path, seen)
    types = {_resolve(c, defs).get("type") for c in choices}
    if types == {"integer", "string"}:
        return {"x-kubernetes-int-or-string": True}
    raise SchemaError(f"{path}: a union of {sorted(map(str, types))} has no structural form")


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    return defs[node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node


def _type_of(values: list[Any], path: str) -> str:
    kinds = {type(v) for v in values}
    for py, name in ((str, "string"), (bool, "boolean"), (int, "integer")):
        if kinds == {py}:
            return name
    raise SchemaError(f"{path}: enum {values} mixes types")


def spec_schema(kind: str) -> Schema:
    """The structural schema of `kind`'s object: `spec` from its model, Istio's `status`."""
    model = KINDS[kind].model
    if model is None:
        raise SchemaError(f"{kind} has no model")
    full = model.model_json_schema(by_alias=True, mode="validation")
    defs = full.get("$defs", {})
    spec = structural(full["properties"]["spec"], defs, ".spec")
    root: Schema = {
        "type": "object",
        "properties": {"spec": spec, "status": STATUS_SCHEMA},
    }
    if "spec" in full.get("required", ()):
        root["required"] = ["spec"]
    return root


def crd(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition of `kind`: every version it is served in, one storage."""
    info, names = KINDS[kind], NAMES[kind]
    group = group_of(info.versions[0])
    versions = sorted(v.rpartition("/")[2] for v in info.versions)
    if names.storage not in versions:
        raise SchemaError(f"{kind}: storage version {names.storage} is not served")
    schema = spec_schema(kind)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{names.plural}.{group}",
            "annotations": {"helm.sh/resource-policy": "keep"},
            "labels": {"app.kubernetes.io/part-of": "plait"},
        },
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": names.plural,
                "singular": kind.lower(),
                **({"shortNames": list(names.short_names)} if names.short_names else {}),
                "categories": [_category(group), group.replace(".", "-")],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": version == names.storage,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": c.name,
                            "type": c.type,
                            "jsonPath": c.json_path,
                            "description": c.description,
                        }
                        for c in names.columns
                    ],
                    "schema": {"openAPIV3Schema": schema},
                }
                for version in versions
            ],
        },
    }


def _category(group: str) -> str:
    """`kubectl get istio-io` lists every Istio resource, as with Istio's own CRDs."""
    return "istio-io" if group.endswith(".istio.io") else "plait"


def all_crds() -> list[dict[str, Any]]:
    """Every CRD, in a stable order (by group, then kind)."""
    kinds = sorted(NAMES, key=lambda k: (group_of(KINDS[k].versions[0]), k))
    return [crd(kind) for kind in kinds]


class _Dumper(yaml.SafeDumper):
    """Writes repeated subtrees out in full: no YAML anchors in a CRD."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    """All CRDs as one multi-document YAML text (what charts/base ships)."""
    header = "# Generated by `python -m plait.kube.crds` from plait's API models. Do not edit.\n"
    return header + "".join(
        "---\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100) for doc in all_crds()
    )


if __name__ == "__main__":
    sys.stdout.write(render())
