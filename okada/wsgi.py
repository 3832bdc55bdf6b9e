import os

from django.core.wsgi import get_wsgi_application

from okada.core import unread_body

# A deploy that forgets DJANGO_SETTINGS_MODULE gets production settings and fails closed
# (no SECRET_KEY, no ALLOWED_HOSTS) instead of running with the development ones.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "okada.settings.production")
# A request answered with its body unread closes its connection (okada.core.unread_body).
application = unread_body.closing(get_wsgi_application())
