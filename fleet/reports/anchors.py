"""The audit chain heads the deploy tags recorded: anchors outside the database.

Each deploy tag's message carries ``audit-head: <sequence>:<hash>`` (the chain's last
event when the tag was made, ``fleet.gitops.tags``). The internal repos are written
by the control plane and read by people, and are not the database's to rewrite: a
database rewritten consistently (every hash recomputed, checkpoints re-signed by
someone who has the key) no longer matches them. This sits above the chain, which
must not import gitops: ``audit verify --anchors`` calls it and hands the anchors in.
"""

from __future__ import annotations

from fleet.audit.verify import Anchor
from fleet.core.errors import FleetError
from fleet.gitops import services as gitops
from fleet.inventory.models import Cluster


def deploy_tag_anchors() -> tuple[list[Anchor], list[str]]:
    """Every anchor in every cluster's deploy tags, and the clusters whose tags could not be read."""
    anchors, unreadable = [], []
    for cluster in Cluster.objects.select_related("channel").order_by("name"):
        try:
            records = gitops.history(cluster)
        except FleetError as exc:
            unreadable.append(f"{cluster.name}: deploy tags not read, its anchors are not checked: {exc}")
            continue
        for record in records:
            anchor = Anchor.parse(record.audit_head, f"deploy tag {record.tag} of {cluster.name}")
            if anchor is not None:
                anchors.append(anchor)
    return anchors, unreadable
