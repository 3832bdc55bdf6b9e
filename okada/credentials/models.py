"""API credentials: vendor and storefront API keys, vendor users' personal tokens.

Only a SHA-256 of each secret is stored; the secret itself is shown once when it is made. A
credential is found by its public prefix, then its hash is compared in constant time.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from catalog.models import Vendor
from okada.core.fields import choices_check
from okada.core.models import BaseModel


class Scope(models.TextChoices):
    PRODUCTS_READ = "products:read", _("read products, stock, categories and zones")
    PRODUCTS_WRITE = "products:write", _("create, change and delete products")
    STOCK_WRITE = "stock:write", _("adjust and count stock")
    ORDERS_READ = "orders:read", _("read orders")
    ORDERS_WRITE = "orders:write", _("move orders along their lifecycle")
    ORDERS_PLACE = "orders:place", _("place orders")
    SYNC = "sync", _("offline sync of a vendor device")


VENDOR_SCOPES = [s.value for s in Scope]
STOREFRONT_SCOPES = [Scope.PRODUCTS_READ, Scope.ORDERS_READ, Scope.ORDERS_WRITE, Scope.ORDERS_PLACE]


class KeyKind(models.TextChoices):
    VENDOR = "vendor", _("vendor (acts for one vendor)")
    STOREFRONT = "storefront", _("storefront (places orders)")


class ApiKey(BaseModel):
    Kind = KeyKind

    name = models.CharField(_("name"), max_length=100, db_comment="What the key is for (shown in logs).")
    kind = models.CharField(
        _("kind"), max_length=16, choices=KeyKind.choices, db_comment="vendor or storefront."
    )
    vendor = models.ForeignKey(
        Vendor,
        # CASCADE, not PROTECT: soft-deleting a vendor must not be blocked by its keys (they stop
        # working with it, see the resolver); a hard delete takes them along.
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        verbose_name=_("vendor"),
        db_comment="The vendor a vendor key acts for; NULL for storefront keys.",
    )
    prefix = models.CharField(
        _("prefix"), max_length=16, unique=True, db_comment="Public part of the key, to find it."
    )
    key_hash = models.CharField(
        _("key hash"), max_length=64, db_comment="SHA-256 (hex) of the whole key; never the key."
    )
    scopes = ArrayField(
        models.CharField(max_length=32, choices=Scope.choices),
        verbose_name=_("scopes"),
        default=list,
        db_comment="What the key may do (products:read, orders:place...).",
    )
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, db_comment="The key stops working then; NULL = never."
    )
    revoked_at = models.DateTimeField(
        _("revoked at"), null=True, blank=True, db_comment="When it was revoked; NULL while valid."
    )
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("revoked by"),
        db_comment="Who revoked it.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("issued by"),
        db_comment="Who issued it (NULL: a management command).",
    )
    last_used_at = models.DateTimeField(
        _("last used at"),
        null=True,
        blank=True,
        db_comment="Last request made with it (updated at most once a minute).",
    )

    class Meta:
        db_table_comment = "API keys of vendors' integrations and of the storefront (hashed)."
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]
        constraints = [
            choices_check("kind", KeyKind.choices, "credentials_apikey_kind_valid"),
            models.CheckConstraint(
                condition=Q(kind="vendor", vendor__isnull=False) | Q(kind="storefront", vendor__isnull=True),
                name="credentials_apikey_vendor_iff_vendor_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"


class PersonalToken(BaseModel):
    """An expiring token a vendor user got with their password (POST /api/v1/auth/token)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="api_tokens",
        db_comment="Owner.",
    )
    vendor = models.ForeignKey(
        Vendor,
        verbose_name=_("vendor"),
        on_delete=models.CASCADE,
        related_name="api_tokens",
        db_comment="The vendor it acts for.",
    )
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, db_comment="Public part of the token.")
    token_hash = models.CharField(
        _("token hash"), max_length=64, db_comment="SHA-256 (hex) of the token; never the token."
    )
    expires_at = models.DateTimeField(_("expires at"), db_comment="The token stops working then.")
    revoked_at = models.DateTimeField(
        _("revoked at"), null=True, blank=True, db_comment="When it was revoked; NULL while valid."
    )
    last_used_at = models.DateTimeField(
        _("last used at"), null=True, blank=True, db_comment="Last request (updated at most once a minute)."
    )

    class Meta:
        db_table_comment = "Expiring personal API tokens of vendor users (hashed)."
        verbose_name = _("personal token")
        verbose_name_plural = _("personal tokens")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="credentials_token_expires")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.vendor} ({self.prefix})"
