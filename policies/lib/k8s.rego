# Helpers shared by the baseline, about the object under review (`input`). They are
# rules, not functions, so each is computed once per object however many policies use it.
package lib.k8s

import rego.v1

workload_kinds := {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}

templated_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

pod_spec := input.spec if input.kind == "Pod"

pod_spec := input.spec.jobTemplate.spec.template.spec if input.kind == "CronJob"

pod_spec := input.spec.template.spec if input.kind in templated_kinds

# Every container of the workload, init and ephemeral containers included.
containers := [c |
	some field in ["initContainers", "containers", "ephemeralContainers"]
	some c in object.get(pod_spec, field, [])
]

name := sprintf("%s/%s", [input.kind, input.metadata.name])

# The cluster's environment label, from the evaluation context (empty when unknown).
default env := ""

env := data.fleet.cluster.labels.env
