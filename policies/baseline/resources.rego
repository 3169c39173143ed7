# Every container states CPU and memory requests and limits.
package baseline.resources

import data.lib.k8s
import rego.v1

deny contains msg if {
	some c in k8s.containers
	some section in ["requests", "limits"]
	some resource in ["cpu", "memory"]
	not c.resources[section][resource]
	msg := sprintf("%s: container %s has no %s %s", [k8s.name, c.name, resource, trim_suffix(section, "s")])
}
