"""The demo on the embedded defaults: a real local fleet, a vendor repo with three
releases, an internal repo per cluster, the clusters registered, the baseline
policies, and a rollout waiting to be started from the API or the admin.

Idempotent: a second run reuses repos and records, restarts stopped clusters, and
leaves at most one demo rollout waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from fleet.audit import services as audit
from fleet.dev import testrepo
from fleet.dev.localfleet.fleet import LocalFleet
from fleet.dev.localfleet.register import register, send_audit_to
from fleet.gitops.git import Git
from fleet.inventory.models import Channel, Release
from fleet.policy.choices import Mode
from fleet.policy.services import import_policy_set
from fleet.rollouts import services
from fleet.rollouts.models import Rollout, StrategyTemplate
from fleet.rollouts.states import ROLLOUT_ACTIVE
from fleet.toolchain.build import ensure_binaries

VERSIONS = {"1.0": "1.0.0", "1.1": "1.1.1", "1.2": "1.2.0"}
WAVES = [{"name": "canary", "selector": "ring=canary", "max_parallel": 1, "bake_seconds": 10},
         {"name": "main", "selector": "ring=main", "max_parallel": 2, "max_failures": "50%",
          "require_approval": True}]
POLICIES = Path(settings.BASE_DIR) / "policies"


def repos_dir() -> Path:
    """Under ``FLEET_GIT_LOCAL_ROOTS``' default, where the product accepts local repositories."""
    return settings.DATA_DIR / "repos" / "demo"


def local_fleet() -> LocalFleet:
    return LocalFleet(settings.DATA_DIR / "localfleet")


def _primary(path: Path) -> dict[str, str]:
    """The vendor repo's branch heads, creating the repo on first use."""
    if not path.exists():
        testrepo.create_primary_repo(path)
    return {version: Git(path).run("rev-parse", f"release-{version}").strip() for version in VERSIONS}


def _labels(name: str) -> dict[str, str]:
    return {"ring": "canary", "env": "staging"} if name == "local-1" else {"ring": "main", "env": "prod"}


def seed(count: int, author_name: str, say: Callable[[str], None] = print, *, audit_port: int = 0) -> Rollout:
    say("demo: building or reusing the local-fleet binaries (the first build takes 15-30 minutes)")
    ensure_binaries(progress=say)
    clusters = local_fleet().up(count, progress=say)
    primary_path = repos_dir() / "vendor" / "platform.git"
    heads = _primary(primary_path)
    channels = {v: Channel.objects.filter(name=f"platform-{v.replace('.', '-')}").first() for v in VERSIONS}
    for version, channel in channels.items():
        if channel is None:
            channels[version] = audit.create(Channel(name=f"platform-{version.replace('.', '-')}",
                                                     repo_url=str(primary_path), branch=f"release-{version}",
                                                     description=f"Platform {version} (demo vendor repo)"))
    releases = {}
    for version, channel in channels.items():
        releases[version] = (Release.objects.filter(channel=channel, upstream_sha=heads[version]).first()
                             or audit.create(Release(channel=channel, version=VERSIONS[version],
                                                     upstream_sha=heads[version])))
    repos = {}
    for cluster in clusters:
        repos[cluster.name] = repos_dir() / "internal" / f"{cluster.name}.git"
        if not repos[cluster.name].exists():
            testrepo.create_internal_repo(repos[cluster.name], primary=testrepo.PrimaryRepo(primary_path),
                                          at=heads["1.0"])
    registered = register(clusters, channel=channels["1.0"], repo_url=lambda name: str(repos[name]), labels=_labels)
    if audit_port:
        # The webhook sends its credential over https only: a TLS front (of the local CA) for the
        # plain-HTTP server. Fleet may not serve yet: each batch is retried for ~4 minutes (30 s × 1.5ⁿ).
        url, ca_pem = local_fleet().start_tls_front(audit_port)
        say(f"demo: the clusters send their audit events to Fleet on port {audit_port} (through {url})")
        send_audit_to(local_fleet(), registered, url, ca_pem=ca_pem, namespaces=("platform", "default"),
                      batch_max_wait="5s", initial_backoff="30s")
    import_policy_set("baseline", POLICIES, selector="env=prod", mode=Mode.WARN,
                      description="The shipped baseline library, warning only in the demo")
    if not StrategyTemplate.objects.filter(name="canary-then-rest").exists():
        audit.create(StrategyTemplate(name="canary-then-rest", waves=WAVES,
                                      description="One canary cluster, then the rest after an approval"))
    waiting = Rollout.objects.filter(state__in=ROLLOUT_ACTIVE, selector="fleet.dev/local").first()
    if waiting:
        return waiting
    author = get_user_model().objects.get(username=author_name)
    request = services.RolloutRequest(release=releases["1.0"], selector="fleet.dev/local",
                                      template="canary-then-rest")
    return services.create_rollout(request, author)
