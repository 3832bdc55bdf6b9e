from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerView

from okada.core import health
from okada.core.api.views import SchemaApi, UnknownUrlApi
from okada.health.metrics import metrics_view

api_v1 = [
    path("", include("okada.credentials.urls")),
    path("", include("catalog.urls")),
    path("", include("orders.urls")),
    path("sync/", include("sync.urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SchemaApi.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Anything else under /api/: a problem+json 404 (also with DEBUG on), counted against the
    # caller's rate limit like any other answer.
    re_path(r"^api/", UnknownUrlApi.as_view()),
]

# Under /api/ a refusal, a missing page or a crash is answered as problem+json, elsewhere as usual
# (a refusal's page says why: okada.core.forbidden).
handler400 = "okada.core.api.problems.handler400"
handler403 = "okada.core.api.problems.handler403"
handler404 = "okada.core.api.problems.handler404"
handler500 = "okada.core.api.problems.handler500"
