"""The admin's template helpers."""

from __future__ import annotations

from django.template import Context, Template


def test_a_capped_count_shows_the_cap_and_a_plus_once_past_it():
    shown = Template("{% load okada %}{{ n|capped:3 }}")
    assert [shown.render(Context({"n": n})) for n in (0, 3, 4)] == ["0", "3", "3+"]
