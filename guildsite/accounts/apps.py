from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "guildsite.accounts"
    label = "accounts"
    verbose_name = "Accounts and organisations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from guildsite.accounts import schema  # noqa: F401 - registers the OpenAPI security schemes
