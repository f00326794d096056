"""The Celery app: hosts agents when the site runs with GUILDSITE_EXECUTION_ENGINE=celery."""

import os

from celery import Celery
from celery.signals import beat_init, worker_init

from guilds import process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")

app = Celery("guildsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _a_worker(**kwargs: object) -> None:
    process.set_role(process.ProcessRole.WORKER)  # its pool processes are forked from here and keep it


@beat_init.connect
def _beat(**kwargs: object) -> None:
    process.set_role(process.ProcessRole.BEAT)
