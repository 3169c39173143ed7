"""Deployment tags: writing them, pushing them, reading them back as history, rolling back.

A deployment is marked by an annotated tag ``deploy/YYYY-MM-DD/release-X.Y`` (``-2``,
``-3``… when one day has several) whose message is ``key: value`` lines, so people
read it with ``git show`` and Fleet parses it back. The tags in the internal repo
are the deployment history; nothing else needs to be kept to rebuild a cluster.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from fleet.core import jsonload
from fleet.gitops.constants import INTERNAL, ORIGIN, TAG_PREFIX
from fleet.gitops.errors import BadInput, GitError
from fleet.gitops.workspace import Workspace

_NAME_RE = re.compile(r"/release-\d+\.\d+-(?P<n>\d+)$")
_RECORD_SEP, _FIELD_SEP = "\x1e", "\x1f"
_FIELDS = ("date", "cluster", "local-branch", "upstream-branch", "upstream-sha", "local-sha",
           "backup-branch", "backup-remote", "context", "audit-head")


@dataclass(frozen=True)
class DeploymentRecord:
    tag: str
    date: str
    cluster: str
    local_branch: str
    upstream_branch: str
    upstream_sha: str
    local_sha: str
    backup_branch: str
    backup_remote: str
    context: dict[str, Any] = field(default_factory=dict)
    tagger: str = ""
    # The audit chain's head when the tag was made (``<sequence>:<hash>``): an anchor of
    # the log outside the database, checked by ``audit verify --anchors``.
    audit_head: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        values = asdict(self)
        lines = [f"Deployment of {self.cluster} ({self.local_branch})", ""]
        for key in _FIELDS:
            value = values[key.replace("-", "_")]
            lines.append(f"{key}: {json.dumps(value, sort_keys=True) if key == 'context' else value}")
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, tag: str, message: str, tagger: str = "") -> DeploymentRecord:
        values: dict[str, str] = {}
        for line in message.splitlines():
            key, sep, value = line.partition(": ")
            if sep and key in _FIELDS:
                values[key.replace("-", "_")] = value.strip()
        try:  # anyone who can push a tag wrote this: it goes through the depth-limited loader
            context = jsonload.loads(values.pop("context", "{}") or "{}")
        except jsonload.JsonError:
            context = {}
        known = {key.replace("-", "_"): values.get(key.replace("-", "_"), "")
                 for key in _FIELDS if key != "context"}
        return cls(tag=tag, context=context if isinstance(context, dict) else {}, tagger=tagger, **known)


@dataclass(frozen=True)
class _Tag:
    name: str
    commit: str
    created: int
    tagger: str
    message: str

    @property
    def order(self) -> tuple[int, str, int]:
        """Newest first: the tagger's second, then the message's microsecond date, then ``-N``."""
        stamp = next((line[6:] for line in self.message.splitlines() if line.startswith("date: ")), "")
        match = _NAME_RE.search(self.name)
        return self.created, stamp, int(match["n"]) if match else 1


def _local_tags(ws: Workspace) -> list[_Tag]:
    """Deploy tags in the workspace, newest first."""
    fmt = _FIELD_SEP.join(("%(refname:strip=2)", "%(*objectname)", "%(creatordate:unix)",
                           "%(taggername) %(taggeremail)", "%(contents)")) + _RECORD_SEP
    output = ws.git.run("for-each-ref", f"--format={fmt}", f"refs/tags/{TAG_PREFIX}/")
    tags = []
    for record in output.split(_RECORD_SEP):
        parts = record.lstrip("\n").split(_FIELD_SEP)
        if len(parts) == 5 and parts[1]:  # annotated tags only: lightweight ones have no *objectname
            tags.append(_Tag(parts[0], parts[1], int(parts[2] or 0), parts[3].strip(), parts[4]))
    return sorted(tags, key=lambda t: t.order, reverse=True)


def create_tag(ws: Workspace, context: dict[str, Any],
               now: datetime.datetime | None = None, audit_head: str = "") -> tuple[str, bool]:
    """Tag HEAD as a deployment: ``(tag, created)``; the latest tag is reused if on HEAD."""
    tags = _local_tags(ws)
    head = ws.head()
    if tags and tags[0].commit == head:
        return tags[0].name, False
    now = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    branch = ws.branch()
    upstream = ws.require_upstream(branch)
    record = DeploymentRecord(
        tag="", date=now.isoformat(timespec="microseconds"), cluster=ws.spec.cluster, local_branch=branch,
        upstream_branch=f"{ORIGIN}/{branch}", upstream_sha=ws.merge_base(head, upstream), local_sha=head,
        backup_branch=ws.spec.internal_branch, backup_remote=INTERNAL, context=context, audit_head=audit_head)
    taken = {t.name for t in tags}
    base = f"{TAG_PREFIX}/{now:%Y-%m-%d}/{branch}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    ws.git.run("tag", "--annotate", "--cleanup=verbatim", "--message", record.message(), name, head)
    return name, True


def push(ws: Workspace, tags: list[str]) -> bool:
    """Push HEAD to the internal branch, with ``tags``, atomically; ``True`` if anything moved.

    Upgrades rewrite history, so the branch is force-pushed, but only with a lease
    on the value the job started from (:meth:`Workspace.adopt_internal`): a push
    someone made in the meantime makes this one fail instead of being lost.
    """
    branch_ref = f"refs/heads/{ws.spec.internal_branch}"
    lease, head = ws.lease(), ws.head()
    pushed = ws.git.attempt(
        "push", "--porcelain", "--atomic", f"--force-with-lease={branch_ref}:{lease}", INTERNAL,
        f"HEAD:{branch_ref}", *(f"refs/tags/{t}:refs/tags/{t}" for t in tags),
        remote_url=ws.spec.internal_url)
    if pushed.status != 0:
        now = ws.git.run("ls-remote", INTERNAL, branch_ref, remote_url=ws.spec.internal_url).split("\t")[0]
        if now != lease:
            raise GitError(f"{INTERNAL} branch {ws.spec.internal_branch!r} moved since this job started "
                           f"from it ({lease[:12] or 'absent'} -> {now[:12] or 'absent'}): someone pushed; "
                           "reset the workspace and run again", cluster=ws.spec.cluster)
        raise GitError(f"git push failed: {pushed.stderr.strip() or pushed.stdout.strip()}",
                       cluster=ws.spec.cluster)
    # The push itself moved refs/remotes/internal/<branch> (the remote's fetch refspec maps
    # it), not the lease: that becomes what internal has now, read before the push.
    ws.set_lease(head, now=lease or None)
    return any(line[:1] in (" ", "+", "*") and "\t" in line for line in pushed.stdout.splitlines())


def history(ws: Workspace) -> list[DeploymentRecord]:
    """The deployments recorded by tags on the internal repo, newest first.

    Call after :meth:`Workspace.fetch`, which mirrors internal's deploy tags exactly
    (it prunes local ones internal lacks, such as a tag whose push failed).
    """
    return [DeploymentRecord.parse(t.name, t.message, t.tagger) for t in _local_tags(ws)]


def rollback(ws: Workspace, tag: str) -> DeploymentRecord:
    """Check out the tree a deployment tag recorded, on the branch it was deployed from."""
    found = next((t for t in _local_tags(ws) if t.name == tag), None)
    if found is None:
        raise BadInput(f"deployment tag {tag!r} does not exist", cluster=ws.spec.cluster)
    record = DeploymentRecord.parse(found.name, found.message, found.tagger)
    branch = record.local_branch or ws.branch()
    ws.require_upstream(branch)
    ws.abort_operations()
    ws.start_at(branch, found.commit)
    return record
