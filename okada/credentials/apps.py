from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CredentialsConfig(AppConfig):
    name = "okada.credentials"
    label = "credentials"
    verbose_name = _("API credentials")

    def ready(self) -> None:
        # A disabled password revokes the user's personal tokens (okada.credentials.passwords):
        # the user model is Django's, so only its save signals see every path that disables one.
        from django.conf import settings
        from django.db.models.signals import post_save, pre_save

        from .passwords import note_password_disabled, revoke_tokens_if_password_disabled

        user_model = settings.AUTH_USER_MODEL
        pre_save.connect(
            note_password_disabled, sender=user_model, dispatch_uid="credentials.password_disabled"
        )
        post_save.connect(
            revoke_tokens_if_password_disabled,
            sender=user_model,
            dispatch_uid="credentials.password_disabled",
        )
