"""API keys in the admin: list, issue (the key is shown once), revoke. Tokens: list, revoke.

unfold's ModelAdmin, like every other screen. Nothing here writes a row itself: issuing and
revoking call `okada.credentials.services`, which check the permission again
(`credentials.add_apikey`, `credentials.change_apikey`, `credentials.change_personaltoken`)
whatever the screen shows. Nobody deletes a key or a token here: revoke it, the row keeps who
used it and when (expired tokens are pruned by the hourly job).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext
from unfold.admin import ModelAdmin
from unfold.widgets import UnfoldAdminCheckboxSelectMultipleWidget

from okada.core.admin import (
    HidesSecrets,
    RefusalOnForm,
    RefusesOddInput,
    RevokedFilter,
    ServiceRefused,
    run_per_object,
    staff_actor,
)
from okada.core.display import badge
from okada.core.errors import DomainError

from . import services
from .models import ApiKey, PersonalToken, Scope


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"),
        choices=Scope.choices,
        widget=UnfoldAdminCheckboxSelectMultipleWidget,
        required=False,
        help_text=_("Leave empty for every scope of its kind."),
    )

    class Meta:
        model = ApiKey
        fields = ("name", "vendor", "scopes", "expires_at")
        help_texts = {"vendor": _("Empty: a storefront key.")}


def state_badge(credential: ApiKey | PersonalToken) -> str:
    """Active, expired or revoked, as a coloured badge."""
    if credential.revoked_at is not None:
        return badge("revoked", pgettext("credential state", "revoked"))
    if credential.expires_at is not None and credential.expires_at <= timezone.now():
        return badge("expired", pgettext("credential state", "expired"))
    return badge("active", pgettext("credential state", "active"))


@admin.register(ApiKey)
class ApiKeyAdmin(RefusesOddInput, HidesSecrets, RefusalOnForm, ModelAdmin):
    secret_fields = ("key_hash",)
    list_display = ("name", "kind", "vendor", "scope_list", "prefix", "last_used_at", "expires_at", "state")
    list_filter = ("kind", RevokedFilter)
    list_filter_submit = True
    search_fields = ("name", "prefix", "vendor__name", "vendor__slug")
    list_select_related = ("vendor",)
    autocomplete_fields = ("vendor",)
    actions = ["revoke"]
    form = ApiKeyForm

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description=_("state"))
    def state(self, obj: ApiKey) -> str:
        return state_badge(obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A key never changes once issued: revoke it and issue another.
        if obj is None:
            return ()
        return self.shown_fields()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ApiKeyForm.Meta.fields
        return self.get_readonly_fields(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the row says who used it and when

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The change permission runs the revoke action (obj None); a key's own page is read-only
        # for everybody, so its POST is refused instead of saving the row outside the services.
        return obj is None and super().has_change_permission(request)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        """Only new keys reach here (a key's page refuses changes); issued by the service."""
        try:
            issued = services.api_key_issue(
                name=form.cleaned_data["name"],
                vendor=form.cleaned_data.get("vendor"),
                scopes=form.cleaned_data.get("scopes") or None,
                expires_at=form.cleaned_data.get("expires_at"),
                actor=staff_actor(request),
            )
        except DomainError as exc:  # e.g. a vendor scope on a storefront key, a past expiry
            raise ServiceRefused(exc) from exc
        # The admin goes on with `obj` (its history entry names it): make it the issued row.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(issued.key, field.attname))
        obj._state.adding = False
        request._okada_issued_secret = issued.secret  # type: ignore[attr-defined]

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: Any = None) -> HttpResponse:
        """Show the key once, on this page only (never in a message: messages live in cookies)."""
        secret = getattr(request, "_okada_issued_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "key": ApiKey.objects.get(pk=obj.pk),
            "secret": secret,
            "title": _("API key issued"),
        }
        response = TemplateResponse(request, "admin/credentials/apikey_issued.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Revoke selected keys"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        actor = staff_actor(request)
        run_per_object(
            self,
            request,
            queryset,
            lambda key: services.api_key_revoke(key=key, actor=actor),
            lambda n: ngettext("%(n)d key revoked.", "%(n)d keys revoked.", n) % {"n": n},
        )


@admin.register(PersonalToken)
class PersonalTokenAdmin(RefusesOddInput, HidesSecrets, ModelAdmin):
    secret_fields = ("token_hash",)
    list_display = ("user", "vendor", "prefix", "created_at", "last_used_at", "expires_at", "state")
    list_filter = (RevokedFilter,)
    list_filter_submit = True
    list_select_related = ("user", "vendor")
    search_fields = ("user__username", "vendor__slug", "prefix")
    actions = ["revoke"]

    @admin.display(description=_("state"))
    def state(self, obj: PersonalToken) -> str:
        return state_badge(obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.shown_fields()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # As for keys: the permission runs the revoke action; a token's own page is read-only.
        return obj is None and super().has_change_permission(request)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_readonly_fields(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # users get tokens with their password, from the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Revoke selected tokens"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[PersonalToken]) -> None:
        actor = staff_actor(request)
        run_per_object(
            self,
            request,
            queryset,
            lambda token: services.personal_token_revoke(token=token, actor=actor),
            lambda n: ngettext("%(n)d token revoked.", "%(n)d tokens revoked.", n) % {"n": n},
        )
