"""The Celery app: hosts agents when the site runs with GUILDSITE_EXECUTION_ENGINE=celery."""

import os

from celery import Celery
from celery.signals import (
    beat_init,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from guilds import process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")

app = Celery("guildsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# A worker that takes drain tasks also listens on the drain lane (guilds.engines.celery.lane): its name and pool.
_drain_worker: tuple[str, str] | None = None
_POOLS_WITH_PROCESS_INIT = {"prefork", "solo"}  # they say when each process that runs tasks is ready


@worker_init.connect
def _a_worker(sender, **kwargs: object) -> None:
    global _drain_worker
    process.set_role(process.ProcessRole.WORKER)  # its pool processes are forked from here and keep it
    from guilds.engines.celery.wire import task_queue

    if task_queue() in sender.app.amqp.queues.consume_from:
        _drain_worker = (sender.hostname, _pool_name(sender.pool_cls))


def _pool_name(pool_cls: object) -> str:
    """`prefork`, `solo`, `thread`, ...: as given on the command line, or the module of Celery's pool class."""
    if isinstance(pool_cls, str):
        return pool_cls.lower()
    return getattr(pool_cls, "__module__", "").rpartition(".")[2]


@worker_process_init.connect
def _a_pool_process(**kwargs: object) -> None:
    if _drain_worker is not None and _drain_worker[1] in _POOLS_WITH_PROCESS_INIT:
        from billiard.process import current_process

        from guilds.engines.celery import lane

        # A replacement takes its predecessor's index: the held items it finds are that process's.
        lane.listen(_drain_worker[0], getattr(current_process(), "index", None) or 0)


@worker_process_shutdown.connect
@worker_shutdown.connect
def _a_process_going(**kwargs: object) -> None:
    # Celery's warm shutdown waits for its tasks, not for the lane's drains: they end here, or go back on the lane.
    if _drain_worker is not None:
        from guilds.engines.celery import lane

        lane.stop_listening()


@worker_ready.connect
def _a_worker_ready(**kwargs: object) -> None:
    if _drain_worker is not None and _drain_worker[1] not in _POOLS_WITH_PROCESS_INIT:  # threads: runs tasks here
        from guilds.engines.celery import lane

        lane.listen(_drain_worker[0], 0)


@beat_init.connect
def _beat(**kwargs: object) -> None:
    process.set_role(process.ProcessRole.BEAT)
