"""Self-heal and freeze on the real local fleet: a heal is a deployment of the deployed
tag through the pipeline (only the drifted objects, forced ownership), audited with its
diff; a competing manager gets the cluster contested; a rollout holding the cluster, a
paused cluster, a failing heal (backoff) and freeze, each as documented."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from django.utils import timezone

from fleet.audit.models import AuditEvent
from fleet.drift import heal, scan, services
from fleet.drift.choices import DriftState as S
from fleet.drift.models import ClusterDrift, HealAttempt
from fleet.gitops.git import Git
from fleet.kube.client import client_for
from fleet.rollouts import services as rollouts
from fleet.rollouts.models import Rollout
from fleet.rollouts.states import DeploymentState as D
from fleet.rollouts.states import transition

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_backoff_is_2s_times_3_capped_at_5_minutes():
    assert [heal.backoff(n) for n in range(1, 8)] == [2, 6, 18, 54, 162, 300, 300]


def heal_rollout(world) -> Rollout | None:
    drift = ClusterDrift.objects.get(cluster=world.cluster)
    return drift.heal_rollout


def test_self_heal_puts_the_drifted_objects_back_and_the_audit_shows_the_diff(drift_world):
    drift_world.deploy()
    services.set_cluster_mode(drift_world.cluster, mode="heal")
    drift_world.kubectl("set", "image", "deployment/web", "web=registry.local/web:evil")
    drift_world.kubectl("delete", "configmap", "app-config")
    drift = scan.scan_cluster(drift_world.cluster)
    assert drift.state == S.DRIFTED
    rollout = heal_rollout(drift_world)
    assert rollout is not None and rollout.kind == "heal" and rollout.author.username == heal.SYSTEM_USER
    deployment = drift_world.run_rollout(rollout)
    assert deployment.state == D.SUCCEEDED, deployment.error
    assert sorted(ref["name"] for ref in deployment.heal_refs) == ["app-config", "web"]  # only what drifted
    assert deployment.steps["apply"]["detail"]["applied"] == 2 and deployment.tag == deployment.target_tag
    live = client_for(drift_world.cluster).get(f"/apis/apps/v1/namespaces/{drift_world.ns}/deployments/web")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:1"
    assert scan.scan_cluster(drift_world.cluster).state == S.IN_SYNC
    event = AuditEvent.objects.get(action="drift.heal")
    changes = {o["object"]: o for o in event.metadata["diff"]}
    web = changes[f"Deployment.apps {drift_world.ns}/web"]["changes"][0]
    assert (web["desired"], web["live"], web["manager"]) == ("registry.local/web:1", "registry.local/web:evil",
                                                            "kubectl-set")
    assert changes[f"ConfigMap {drift_world.ns}/app-config"]["state"] == "missing"
    assert AuditEvent.objects.filter(action="drift.healed").count() == 1
    assert AuditEvent.objects.filter(action="deployment.succeeded", cluster=drift_world.cluster.name).count() == 2


class Competitor:
    """Another tool re-applying its own value in a loop, with the real kubectl."""

    def __init__(self, world, manager: str = "rogue-loop"):
        self.world, self.stop = world, threading.Event()
        manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "app-config", "namespace": world.ns}, "data": {"LOG_LEVEL": "debug"}}
        self.args = ("apply", "--server-side", "--force-conflicts", f"--field-manager={manager}", "-f", "-")
        self.text = yaml.safe_dump(manifest)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            self.world.kubectl(*self.args, input=self.text, check=False)
            self.stop.wait(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_a_competing_kubectl_loop_gets_the_cluster_contested_and_heals_stop(drift_world, settings):
    settings.FLEET_DRIFT_CONTEST_COUNT = 2
    drift_world.deploy()
    services.set_cluster_mode(drift_world.cluster, mode="heal")
    with Competitor(drift_world):
        for _ in range(6):
            deadline = time.monotonic() + 20
            while (drift := scan.scan_cluster(drift_world.cluster)).state != S.DRIFTED:
                assert time.monotonic() < deadline, "the competitor did not come back"
                time.sleep(0.2)
            if drift.contested_at:  # the scan's heal step found the drift back too often
                break
            rollout = heal_rollout(drift_world)
            assert rollout is not None
            assert drift_world.run_rollout(rollout).state == D.SUCCEEDED
    drift = ClusterDrift.objects.get(cluster=drift_world.cluster)
    assert drift.contested_at is not None and drift.contested_by == "rogue-loop"
    assert HealAttempt.objects.filter(drift=drift).count() == 2
    event = AuditEvent.objects.get(action="drift.contested")
    assert event.metadata["manager"] == "rogue-loop"
    scan.scan_cluster(drift_world.cluster)  # still drifted: no heal while contested
    assert HealAttempt.objects.filter(drift=drift).count() == 2 and heal_rollout(drift_world) is None
    services.acknowledge(drift_world.cluster)
    assert ClusterDrift.objects.get(pk=drift.pk).contested_at is None


def test_a_scan_during_a_rollout_does_not_heal_that_cluster_and_a_paused_one_is_never_healed(drift_world):
    drift_world.deploy()
    services.set_cluster_mode(drift_world.cluster, mode="heal")
    drift_world.kubectl("scale", "deployment/web", "--replicas=7")
    # A rollout holds the cluster: its deployment is running (claimed), its worker busy.
    holding = rollouts.create_rollout(rollouts.RolloutRequest(
        release=drift_world.release, clusters=[drift_world.cluster.name],
        waves=[{"name": "all", "clusters": [drift_world.cluster.name]}]), drift_world.author)
    held = holding.deployments.get()
    assert transition(held, D.RUNNING, started_at=timezone.now())
    assert scan.scan_cluster(drift_world.cluster).state == S.DRIFTED
    assert heal_rollout(drift_world) is None and not HealAttempt.objects.exists()
    with pytest.raises(Exception) as refused:
        services.request_heal(drift_world.cluster)
    assert "already in an unfinished rollout" in str(refused.value)
    transition(held, D.CANCELLED)
    type(holding).objects.filter(pk=holding.pk).update(state="aborted")
    drift_world.cluster.paused = True
    drift_world.cluster.save()
    assert scan.scan_cluster(drift_world.cluster).state == S.DRIFTED
    assert heal_rollout(drift_world) is None and not HealAttempt.objects.exists()


def test_a_failing_heal_backs_off_then_is_retried(drift_world):
    deployment = drift_world.deploy()
    services.set_cluster_mode(drift_world.cluster, mode="heal")
    assert scan.scan_cluster(drift_world.cluster).state == S.IN_SYNC  # the desired set is cached now
    drift_world.kubectl("scale", "deployment/web", "--replicas=3")
    Git(drift_world.internal).run("tag", "-d", deployment.tag)  # the heal's prepare will fail
    assert scan.scan_cluster(drift_world.cluster).state == S.DRIFTED
    failed = drift_world.run_rollout(heal_rollout(drift_world))
    assert failed.state == D.FAILED
    drift = scan.scan_cluster(drift_world.cluster)  # settles the failed heal: retry in 2 s
    drift.refresh_from_db()
    assert drift.heal_failures == 1 and drift.heal_retry_at is not None and drift.heal_rollout is None
    assert 1 < (drift.heal_retry_at - timezone.now()).total_seconds() <= 2
    assert AuditEvent.objects.filter(action="drift.heal_failed").count() == 1
    time.sleep(2.1)
    scan.scan_cluster(drift_world.cluster)
    assert heal_rollout(drift_world) is not None and HealAttempt.objects.count() == 2


def test_freeze_skips_a_drifted_cluster_in_deploy_rollouts_until_someone_decides(drift_world):
    drift_world.deploy()
    services.set_cluster_mode(drift_world.cluster, mode="freeze")
    drift_world.kubectl("label", "deployment", "web", "hotfix=yes")
    assert scan.scan_cluster(drift_world.cluster).state == S.DRIFTED
    skipped = drift_world.deploy()
    assert skipped.state == D.SKIPPED and "frozen by drift" in skipped.error
    services.acknowledge(drift_world.cluster)
    assert drift_world.deploy().state == D.SUCCEEDED
