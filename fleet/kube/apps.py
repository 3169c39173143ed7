from django.apps import AppConfig


class KubeConfig(AppConfig):
    name = "fleet.kube"
    label = "kube"
