# fleet:scope set
# A release must not remove a Namespace from a prod cluster (it deletes all it holds).
package baseline.namespaces

import rego.v1

deny contains msg if {
	input.cluster.labels.env == "prod"
	some removed in input.change.removed
	removed.kind == "Namespace"
	msg := sprintf("removing Namespace %s from prod cluster %s is not allowed", [removed.name, input.cluster.name])
}
