from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "fleet.accounts"
    label = "accounts"

    def ready(self) -> None:
        from fleet.accounts import schema, signals  # noqa: F401 - registers extensions, receivers
