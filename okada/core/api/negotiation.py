"""Content negotiation: DRF's, plus the refusal a client writes as `q=0` (RFC 9110 12.4.2).

DRF orders the Accept header's media ranges by how specific they are and ignores their weights,
so `Accept: application/json;q=0` was answered in JSON. Here a range weighted 0 is never a
reason to choose a renderer, and a renderer whose most specific matching range is weighted 0 is
left out: a client that accepts nothing the API writes gets a 406 (in problem+json, as every
error). The weights of other ranges still do not reorder DRF's choice: both renderers write the
same JSON.
"""

from __future__ import annotations

from typing import Any

from django.utils.http import parse_header_parameters
from rest_framework.negotiation import DefaultContentNegotiation


def _range(token: str) -> tuple[str, float]:
    """A media range of an Accept header and its weight (1 when absent or unreadable)."""
    try:
        media_type, params = parse_header_parameters(token)
        return media_type, float(params.get("q", 1))
    except ValueError:
        return "", 1.0


def _refused(media_type: str, ranges: list[tuple[str, float]]) -> bool:
    """Whether the most specific of `ranges` that covers `media_type` weighs 0."""
    kind = media_type.partition("/")[0]
    for candidate in (media_type, f"{kind}/*", "*/*"):  # the most specific first
        weights = [q for name, q in ranges if name == candidate]
        if weights:
            return max(weights) <= 0
    return False


class ContentNegotiation(DefaultContentNegotiation):
    @staticmethod
    def _weighted(request: Any) -> bool:
        return "q" in request.headers.get("accept", "").lower()  # only a weighted header refuses

    def get_accept_list(self, request: Any) -> list[str]:
        tokens = super().get_accept_list(request)
        if not self._weighted(request):
            return tokens
        return [token for token in tokens if _range(token)[1] > 0]

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        if self._weighted(request):
            ranges = [_range(token) for token in super().get_accept_list(request)]
            renderers = [r for r in renderers if not _refused(r.media_type, ranges)]
        return super().select_renderer(request, renderers, format_suffix)
