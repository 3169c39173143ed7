from django.apps import AppConfig


class ClusterAuditConfig(AppConfig):
    name = "fleet.clusteraudit"
    label = "clusteraudit"
    verbose_name = "Cluster audit (API servers' events)"
