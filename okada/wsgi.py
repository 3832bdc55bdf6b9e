import os

from django.core.wsgi import get_wsgi_application

# A deploy that forgets DJANGO_SETTINGS_MODULE gets production settings and fails closed
# (no SECRET_KEY, no ALLOWED_HOSTS) instead of running with the development ones.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "okada.settings.production")
application = get_wsgi_application()
