"""Catalog routes under /api/v1/ (included by okada/urls.py)."""

from django.urls import path

from okada.core.api import paths  # noqa: F401 (registers <anyuuid:...>)

from . import apis

urlpatterns = [
    path("products", apis.ProductListApi.as_view(), name="api-products"),
    path("products/bulk", apis.ProductBulkApi.as_view(), name="api-products-bulk"),
    path("products/<anyuuid:pk>", apis.ProductDetailApi.as_view(), name="api-product"),
    path(
        "products/<anyuuid:pk>/stock-adjustments",
        apis.StockAdjustmentApi.as_view(),
        name="api-product-stock-adjustments",
    ),
    path("products/<anyuuid:pk>/stock", apis.StockCountApi.as_view(), name="api-product-stock"),
    path("categories", apis.CategoryListApi.as_view(), name="api-categories"),
]
