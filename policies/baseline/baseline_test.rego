# Run with: opa test policies/baseline policies/lib
package baseline_test

import data.baseline
import rego.v1

pod(containers) := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app.kubernetes.io/name": "p", "owner": "team"}}, "spec": {"containers": containers}}

good := {
	"name": "c", "image": "registry.example.com/app:1.2.3",
	"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
}

deploy(replicas) := {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"app.kubernetes.io/name": "d", "owner": "team"}}, "spec": {"replicas": replicas, "template": {"spec": {"containers": [good]}}}}

ctx(env) := {"cluster": {"name": "c1", "labels": {"env": env}}, "release": {}, "change": {"added": [], "changed": [], "removed": []}}

test_good_pod_passes_everything if {
	every pkg in ["images", "resources", "security", "labels", "registries", "replicas"] {
		count(baseline[pkg].deny) == 0 with input as pod([good]) with data.fleet as ctx("prod")
	}
}

test_latest_and_untagged_images_denied if {
	count(baseline.images.deny) == 2 with input as pod([object.union(good, {"image": "registry.example.com/app:latest"}), object.union(good, {"name": "d", "image": "registry.example.com/app"})])
}

test_digest_allowed if {
	count(baseline.images.deny) == 0 with input as pod([object.union(good, {"image": "registry.example.com/app@sha256:0123"})])
}

test_missing_limits_denied if {
	no_limits := {"name": "c", "image": good.image, "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}
	count(baseline.resources.deny) == 2 with input as pod([no_limits])
}

test_privileged_hostpath_hostnetwork_denied if {
	bad := object.union(pod([object.union(good, {"securityContext": {"privileged": true}})]), {"spec": {"hostNetwork": true, "volumes": [{"name": "h", "hostPath": {"path": "/etc"}}]}})
	count(baseline.security.deny) == 3 with input as bad
}

test_required_labels if {
	count(baseline.labels.deny) == 2 with input as {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [good]}}
	count(baseline.labels.deny) == 0 with input as {"kind": "ConfigMap", "metadata": {"name": "x"}}
}

test_registries_per_env if {
	hub := pod([object.union(good, {"image": "docker.io/library/nginx:1.27"})])
	count(baseline.registries.deny) == 0 with input as hub with data.fleet as ctx("dev")
	count(baseline.registries.deny) == 1 with input as hub with data.fleet as ctx("prod")
	count(baseline.registries.deny) == 1 with input as hub with data.fleet as ctx("unknown")
}

test_replicas_in_prod if {
	count(baseline.replicas.deny) == 1 with input as deploy(1) with data.fleet as ctx("prod")
	count(baseline.replicas.deny) == 0 with input as deploy(2) with data.fleet as ctx("prod")
	count(baseline.replicas.deny) == 0 with input as deploy(1) with data.fleet as ctx("dev")
}

test_namespace_removal_in_prod if {
	change := {"added": [], "changed": [], "removed": [{"apiVersion": "v1", "kind": "Namespace", "namespace": "", "name": "shop"}]}
	count(baseline.namespaces.deny) == 1 with input as {"objects": [], "cluster": {"name": "c1", "labels": {"env": "prod"}}, "change": change}
	count(baseline.namespaces.deny) == 0 with input as {"objects": [], "cluster": {"name": "c1", "labels": {"env": "dev"}}, "change": change}
}
