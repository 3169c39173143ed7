# No mutable image references: `:latest`, or no tag and no digest (which means latest).
package baseline.images

import data.lib.k8s
import rego.v1

deny contains msg if {
	some c in k8s.containers
	uses_latest(c.image)
	msg := sprintf("%s: container %s uses a mutable image \"%s\"; pin a version tag or a digest", [k8s.name, c.name, c.image])
}

uses_latest(image) if endswith(image, ":latest")

uses_latest(image) if {
	not contains(image, "@")
	last := split(image, "/")
	not contains(last[count(last) - 1], ":")
}
