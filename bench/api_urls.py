"""okada's URLs and `/bench/ping`: a minimal DRF view (no authentication, no database), the
baseline of the API list figures: what DRF and gunicorn cost by themselves on this machine."""

from typing import Any

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from okada.urls import handler404, handler500  # noqa: F401
from okada.urls import urlpatterns as okada_urlpatterns


class Ping(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [path("bench/ping", Ping.as_view()), *okada_urlpatterns]
