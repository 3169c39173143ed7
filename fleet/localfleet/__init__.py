"""A local fleet of real Kubernetes clusters on loopback, for tests and the demo.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes),
built from pinned Go modules (``binaries``) and run as plain processes (``fleet``).
"""
