from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "fleet.rollouts"
    label = "rollouts"

    def ready(self) -> None:
        # The services enqueue through the orchestrator's Scheduler, never through the
        # tasks module: install Celery's here, in every process (web, worker, command).
        from fleet.rollouts import orchestrator, tasks

        orchestrator.install(tasks.SCHEDULER)
