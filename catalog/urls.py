"""Catalog routes under /api/v1/ (included by okada/urls.py)."""

from django.urls import path

from . import apis

urlpatterns = [
    path("products", apis.ProductListApi.as_view(), name="api-products"),
    path("products/bulk", apis.ProductBulkApi.as_view(), name="api-products-bulk"),
    path("products/<uuid:pk>", apis.ProductDetailApi.as_view(), name="api-product"),
    path(
        "products/<uuid:pk>/stock-adjustments",
        apis.StockAdjustmentApi.as_view(),
        name="api-product-stock-adjustments",
    ),
    path("products/<uuid:pk>/stock", apis.StockCountApi.as_view(), name="api-product-stock"),
    path("categories", apis.CategoryListApi.as_view(), name="api-categories"),
]
