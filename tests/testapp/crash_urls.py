"""A URL whose view crashes, for tests of what a 500 logs."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def crash(request: HttpRequest) -> HttpResponse:
    password = "s3cret-in-a-frame"  # a local a traceback printer must not show
    raise RuntimeError(f"crash on purpose ({len(password)})")


urlpatterns = [path("crash", crash)]
