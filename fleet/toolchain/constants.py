"""Pinned versions of the Go-built tools and how each is built.

This is the one place versions are chosen. Each build group has a go.mod of ours under
``deploy/toolchain/gomod/<group>/`` that requires the same module version (checked
before every build and by a test), so its committed go.sum makes builds reproducible.
To bump a version: change it here and in that go.mod, run ``go mod tidy`` there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
KUSTOMIZE_VERSION = "v5.8.2"  # v5.8.3 needs Go 1.27
OPA_VERSION = "v1.22.2"
CONFTEST_VERSION = "v0.71.1"
TOXIPROXY_VERSION = "v2.12.0"  # the TCP proxy between Fleet and local clusters (latency, resets: tests/faults)
GATOR_VERSION = "v3.23.1"  # Gatekeeper's CLI: `gator test` / `gator verify`, the reference the gate is measured by


@dataclass(frozen=True)
class GoBuild:
    """One ``go build`` invocation: packages from one pinned module, built together.

    Building the four Kubernetes commands in one invocation lets them share compiled
    packages, which is much faster on two cores than four separate builds.
    """

    group: str  # directory under deploy/toolchain/gomod
    module: str  # the module whose version is pinned (must match the go.mod require)
    version: str
    packages: dict[str, str]  # binary name -> Go main package
    ldflags: tuple[str, ...] = field(default=())
    # Non-binary artifacts: name -> files of the pinned module, concatenated as YAML
    # documents. Cached as <name>-<version> next to the binaries.
    module_files: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _kube_version_ldflags(version: str) -> tuple[str, ...]:
    """Stamp the version as Kubernetes' hack/lib/version.sh does.

    Without it, /version and ``kubectl version`` report ``v0.0.0-master``.
    """
    major, minor = version.lstrip("v").split(".")[:2]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return tuple(
        f"-X {package}.{key}={value}"
        for package in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version")
        for key, value in values.items()
    )


BUILDS: tuple[GoBuild, ...] = (
    GoBuild(
        group="kubernetes",
        module="k8s.io/kubernetes",
        version=KUBERNETES_VERSION,
        packages={
            name: f"k8s.io/kubernetes/cmd/{name}"
            for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        },
        ldflags=_kube_version_ldflags(KUBERNETES_VERSION),
    ),
    GoBuild("etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION, {"etcd": "go.etcd.io/etcd/server/v3"}),
    GoBuild(
        "kwok",
        "sigs.k8s.io/kwok",
        KWOK_VERSION,
        {"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
        # The kwok binary embeds no Stages (only kwokctl does) and refuses to start
        # without some; these are the ones kwokctl uses by default.
        module_files={
            "kwok-stages": tuple(
                f"kustomize/stage/{path}.yaml"
                for path in (
                    "node/fast/node-initialize",
                    "node/heartbeat-with-lease/node-heartbeat-with-lease",
                    "pod/fast/pod-ready",
                    "pod/fast/pod-complete",
                    "pod/fast/pod-delete",
                )
            )
        },
    ),
    GoBuild(
        "kustomize",
        "sigs.k8s.io/kustomize/kustomize/v5",
        KUSTOMIZE_VERSION,
        {"kustomize": "sigs.k8s.io/kustomize/kustomize/v5"},
    ),
    GoBuild(
        "opa", "github.com/open-policy-agent/opa", OPA_VERSION, {"opa": "github.com/open-policy-agent/opa"}
    ),
    GoBuild(
        "conftest",
        "github.com/open-policy-agent/conftest",
        CONFTEST_VERSION,
        {"conftest": "github.com/open-policy-agent/conftest"},
    ),
    GoBuild(
        "gator",
        "github.com/open-policy-agent/gatekeeper/v3",
        GATOR_VERSION,
        {"gator": "github.com/open-policy-agent/gatekeeper/v3/cmd/gator"},
    ),
    GoBuild(
        "toxiproxy",
        "github.com/Shopify/toxiproxy/v2",
        TOXIPROXY_VERSION,
        {
            "toxiproxy-server": "github.com/Shopify/toxiproxy/v2/cmd/server",
            "toxiproxy-cli": "github.com/Shopify/toxiproxy/v2/cmd/cli",
        },
    ),
)

BINARY_NAMES: tuple[str, ...] = tuple(name for build in BUILDS for name in build.packages)
ARTIFACT_NAMES: tuple[str, ...] = BINARY_NAMES + tuple(
    name for build in BUILDS for name in build.module_files
)

# Concurrent `go build` invocations. Each already compiles packages in parallel, so on
# a 2-core machine a second one mainly overlaps the other's single-threaded link step.
BUILD_PARALLELISM = 2
