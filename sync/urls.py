"""Offline sync routes under /api/v1/sync/ (included by okada/urls.py)."""

from django.urls import path

from . import apis

urlpatterns = [
    path("devices", apis.DeviceRegisterApi.as_view(), name="api-sync-devices"),
    path("pull", apis.PullApi.as_view(), name="api-sync-pull"),
    path("push", apis.PushApi.as_view(), name="api-sync-push"),
]
