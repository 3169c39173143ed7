from django.apps import AppConfig


class DriftConfig(AppConfig):
    name = "fleet.drift"
    label = "drift"

    def ready(self) -> None:
        # The rollouts know nothing of drift: drift installs its hooks into them here,
        # and Celery's way to scan (right after a deployment, on request, by selector).
        from fleet.drift import hooks, services, tasks

        services.install(services.Scheduler(
            scan_cluster=lambda pk, trigger: tasks.scan_cluster.delay(pk, trigger),
            scan_selector=lambda selector, trigger: tasks.scan_selector.delay(selector, trigger)))
        hooks.install()
