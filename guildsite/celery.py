"""The Celery app: hosts agents when the site runs with GUILDSITE_EXECUTION_ENGINE=celery."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")

app = Celery("guildsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
