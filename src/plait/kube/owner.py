"""The owner of what the control plane makes at run time.

The control plane creates objects helm does not know about: the CA Secret
(`plait.ca.kubesecret`), the leader-election Lease and the `istio-ca-root-cert` ConfigMap
in every namespace. Each names the chart's ClusterRole for the control plane as its owner,
so Kubernetes' garbage collector deletes them once `helm uninstall` has deleted it. A
ClusterRole because the owner must be cluster-scoped to own objects in every namespace,
and exists exactly as long as the release. `blockOwnerDeletion` is not set: the owner
goes first and its dependents follow.
"""

from __future__ import annotations

from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import OwnerReference
from lightkube.resources.rbac_authorization_v1 import ClusterRole

from plait.errors import KubeApiError


async def cluster_role_owner(client: AsyncClient, name: str) -> OwnerReference:
    """An ownerReference to the ClusterRole `name` (KubeApiError if it cannot be read)."""
    try:
        role = await client.get(ClusterRole, name)
    except ApiError as exc:
        raise KubeApiError(f"the owner ClusterRole {name}: {exc.status.message}") from exc
    assert role.metadata is not None and role.metadata.uid is not None
    return OwnerReference(
        apiVersion="rbac.authorization.k8s.io/v1", kind="ClusterRole", name=name,
        uid=role.metadata.uid,
    )  # fmt: skip


def as_json(owner: OwnerReference | None) -> list[dict[str, str]]:
    """`metadata.ownerReferences` for a raw JSON body: the owner, or none."""
    if owner is None:
        return []
    return [{"apiVersion": owner.apiVersion, "kind": owner.kind, "name": owner.name,
             "uid": owner.uid}]  # fmt: skip
