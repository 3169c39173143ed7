from django.apps import AppConfig


class PolicyConfig(AppConfig):
    name = "fleet.policy"
    label = "policy"
    verbose_name = "Policy gate"

    def ready(self) -> None:
        """Every process's policy memo shares its findings through the database."""
        from fleet.policy.engines import install_shared_memo
        from fleet.policy.memo_store import DatabaseMemoStore

        install_shared_memo(DatabaseMemoStore())
