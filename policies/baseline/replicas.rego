# In prod, a Deployment or StatefulSet runs at least two replicas (unset means one).
package baseline.replicas

import data.lib.k8s
import rego.v1

deny contains msg if {
	k8s.env == "prod"
	input.kind in {"Deployment", "StatefulSet"}
	replicas := object.get(input.spec, "replicas", 1)
	replicas < 2
	msg := sprintf("%s: %d replica(s) in prod; at least 2 are required", [k8s.name, replicas])
}
