"""What a reflector meets on the real API server: a watch from a resourceVersion that etcd
has compacted away ends in 410 Gone (lightkube raises ApiError 410), and a fresh list
resumes. This cluster runs without the watch cache (`--watch-cache=false`), which makes
410 deterministic after `Cluster.compact()` (with the cache, 410 comes only once the
cache's window has moved past the version; but bookmarks need the cache)."""

from __future__ import annotations

import pytest
from lightkube import ApiError, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap

from kubecluster import Cluster


def test_a_watch_from_a_compacted_version_gets_410_and_a_relist_resumes(uncached: Cluster) -> None:
    with Client(
        KubeConfig.from_file(str(uncached.kubeconfig)), field_manager="plait-test"
    ) as client:
        first = client.create(ConfigMap(metadata=ObjectMeta(name="one", namespace="default")))
        assert first.metadata is not None and first.metadata.resourceVersion
        old = first.metadata.resourceVersion
        client.create(ConfigMap(metadata=ObjectMeta(name="two", namespace="default")))

        # before compaction the old version still replays what came after it (lightkube's
        # watch reconnects for ever: stop at the event)
        for event, cm in client.watch(ConfigMap, namespace="default", resource_version=old):
            assert cm.metadata is not None
            if (event, cm.metadata.name) == ("ADDED", "two"):
                break

        # compaction keeps the revision it is made at: one more write puts `two` behind it
        client.create(ConfigMap(metadata=ObjectMeta(name="three", namespace="default")))
        uncached.compact()
        with pytest.raises(ApiError) as gone:
            for event in client.watch(ConfigMap, namespace="default", resource_version=old):
                raise AssertionError(f"an event from a compacted version: {event}")
        assert gone.value.status.code == 410

        # the reflector's way out: list again, then watch from the list's version
        listed = client.list(ConfigMap, namespace="default")
        names = {cm.metadata.name for cm in listed if cm.metadata is not None}
        assert {"one", "two", "three"} <= names
        assert listed.resourceVersion and int(listed.resourceVersion) > int(old)
