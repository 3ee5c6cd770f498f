"""WSGI entry point: gunicorn schoolsite.wsgi:application, or uWSGI's
--module schoolsite.wsgi:application."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "schoolsite.settings")
application = get_wsgi_application()
