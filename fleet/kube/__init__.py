"""The adapter between Fleet and Kubernetes API servers: one client per inventory
cluster, server-side apply with ApplySet pruning, health, live diff and probes."""
