from django.apps import AppConfig


class MessagingAppConfig(AppConfig):
    name = "messaging"
    default_auto_field = "django.db.models.BigAutoField"
