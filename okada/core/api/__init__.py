"""API conventions shared by every endpoint of `/api/v1/` (DESIGN.md section 4).

Generic pieces only: nothing here knows vendors, products or orders (okada.core imports no
domain app). A domain's endpoints live in its own `apis.py` and are built like this::

    from okada.core.api.pagination import LIST_QUERY, CursorPage
    from okada.core.api.views import ApiView

    class CategoryListApi(ApiView):
        required_scopes = {"GET": "products:read"}
        query_params = {"GET": (*LIST_QUERY, "parent", "ordering")}  # any other: 400 naming it

        def get(self, request):
            page = CursorPage(request, orderings=("position", "-updated_at"), default="position")
            rows = page.paginate(selectors.category_list(...))
            return rows.response(CategoryOut(rows.rows, many=True).data)

A vendor's endpoint scopes its reads by `request.actor.vendor_id` (catalog.apis.ProductScope):
another vendor's row is then simply not found (404).

What a view gets for free from `ApiView`:
- authentication (`Authorization: Bearer <key>`, resolved by `OKADA_API_CREDENTIAL_RESOLVER`);
  `request.actor` is the `okada.core.actors.Actor` to hand to services, `request.credential`
  the credential (its `scope_key` scopes idempotency records and rate limits);
- scopes per method (`required_scopes`), checked before the handler;
- rate limits per credential in Redis (`ratelimit`; per address without a valid one), counted
  before the scope checks so that refused requests count too, with `RateLimit-*` headers,
  failing open (`ApiView.initial` says in which order everything is checked);
- the body size cap (413 before the body is read);
- `Idempotency-Key` on every POST (`idempotency`): replays, mismatch 422, in flight 409, the
  key's lock, the handler and the kept answer in one transaction;
- every error as RFC 9457 problem+json (`problems`), `DomainError` codes mapped one to one.

Serializers subclass `serializers.StrictSerializer`: unknown and read-only fields are refused by
name. Lists use `pagination.CursorPage` (`{"results", "next", "previous"}`).
"""
