from django.apps import AppConfig


class RenderConfig(AppConfig):
    name = "fleet.render"
    label = "render"
