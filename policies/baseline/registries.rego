# Images come from the registries allowed for the cluster's `env` label; a cluster
# without a known env gets the strictest list (prod's).
package baseline.registries

import data.lib.k8s
import rego.v1

allowed := {
	"prod": ["registry.example.com/"],
	"staging": ["registry.example.com/", "staging.registry.example.com/"],
	"dev": ["registry.example.com/", "staging.registry.example.com/", "docker.io/", "ghcr.io/"],
}

allowed_here := allowed[k8s.env]

allowed_here := allowed.prod if not allowed[k8s.env]

deny contains msg if {
	some c in k8s.containers
	not startswith_any(c.image, allowed_here)
	msg := sprintf("%s: container %s image \"%s\" is not from a registry allowed in env \"%s\"", [k8s.name, c.name, c.image, k8s.env])
}

startswith_any(image, prefixes) if {
	some prefix in prefixes
	startswith(image, prefix)
}
