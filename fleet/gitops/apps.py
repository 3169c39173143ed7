from django.apps import AppConfig


class GitopsConfig(AppConfig):
    name = "fleet.gitops"
    label = "gitops"
