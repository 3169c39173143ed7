# Workloads and services carry the labels that say what they are and who owns them.
package baseline.labels

import data.lib.k8s
import rego.v1

required := ["app.kubernetes.io/name", "owner"]

labelled_kinds := k8s.workload_kinds | {"Service"}

deny contains msg if {
	input.kind in labelled_kinds
	some label in required
	not input.metadata.labels[label]
	msg := sprintf("%s: the label %s is required", [k8s.name, label])
}
