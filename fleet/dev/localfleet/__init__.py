"""A local fleet of real Kubernetes clusters on loopback, for tests and the demo.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes),
built from pinned Go modules (``fleet.toolchain``) and run as plain processes
(``fleet``). Plain Python except ``register``, which records clusters in the inventory.
"""
