"""The server of bench/api.py: the production settings, plus the minimal view it compares with."""

from okada.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.api_urls"
