"""Settings of the test site (tests/py/test_web_servers.py).

A production-like configuration: DEBUG off, the cached template loader,
persistent database connections. The SQLite database is created by
builddb.py at the path in SCHOOL_DB before the server starts. Nothing here
knows about memhound: `memhound run --web` adds its middleware itself.
"""

import os

SECRET_KEY = "memhound-test-site-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "school",
    "catalog",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "schoolsite.urls"
WSGI_APPLICATION = "schoolsite.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SCHOOL_DB", "/nonexistent/school.db"),
        # Persistent connections, one per server thread, as production
        # sites run. (With 0, each request opens a connection, and SQLite's
        # backend makes new aggregate classes for each: cyclic garbage,
        # live until the collector runs.)
        "CONN_MAX_AGE": 600,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
