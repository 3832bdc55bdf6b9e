"""Order routes under /api/v1/ (included by okada/urls.py)."""

from django.urls import path, re_path

from okada.core.api import paths  # noqa: F401 (registers <anyuuid:...>)

from . import apis

urlpatterns = [
    path("orders", apis.OrderListApi.as_view(), name="api-orders"),
    path("orders/<anyuuid:pk>", apis.OrderDetailApi.as_view(), name="api-order"),
    path("orders/<anyuuid:pk>/transitions", apis.OrderTransitionApi.as_view(), name="api-order-transitions"),
    path("zones", apis.ZoneListApi.as_view(), name="api-zones"),
    re_path(
        r"^payments/callbacks/(?P<provider>{})$".format("|".join(apis.PROVIDERS)),
        apis.PaymentCallbackApi.as_view(),
        name="api-payment-callback",
    ),
]
