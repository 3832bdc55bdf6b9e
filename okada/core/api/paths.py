"""Path converters of the API's URLs (importing this module registers them)."""

from __future__ import annotations

from django.urls import register_converter
from django.urls.converters import UUIDConverter

_HEX = "[0-9a-fA-F]"


class AnyCaseUUIDConverter(UUIDConverter):
    """`<anyuuid:pk>`: a UUID in either case. UUIDs are read case-insensitively (RFC 9562) and
    the API takes them so in bodies and query strings; Django's `uuid` converter matches lowercase
    only, so an id a client upper-cased was a 404 in a path."""

    regex = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"


register_converter(AnyCaseUUIDConverter, "anyuuid")
