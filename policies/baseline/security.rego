# No privileged containers, no hostPath volumes, no host network.
package baseline.security

import data.lib.k8s
import rego.v1

deny contains msg if {
	some c in k8s.containers
	c.securityContext.privileged == true
	msg := sprintf("%s: container %s is privileged", [k8s.name, c.name])
}

deny contains msg if {
	some volume in k8s.pod_spec.volumes
	volume.hostPath
	msg := sprintf("%s: volume %s mounts a hostPath (%s)", [k8s.name, volume.name, volume.hostPath.path])
}

deny contains msg if {
	k8s.pod_spec.hostNetwork == true
	msg := sprintf("%s: uses the host network", [k8s.name])
}
