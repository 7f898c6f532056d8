"""Settings of the benchmark's Django project (see bench/classic).

Deliberately minimal, the most generous configuration for the classic
stacks: no middleware, no sessions, no templates. Everything that differs
per run comes from the environment the suite sets.
"""
import os

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "benchapp.urls"
WSGI_APPLICATION = "benchapp.wsgi.application"
INSTALLED_APPS = ["benchapp"]
MIDDLEWARE = []
USE_TZ = False
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING_CONFIG = None

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "bench",
        "USER": "root",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": os.environ["BENCH_MYSQL_PORT"],
        # Persistent connections, as a tuned deployment has them (Django's
        # default of 0 opens one connection per request).
        "CONN_MAX_AGE": 60,
        "OPTIONS": {"charset": "utf8mb4"},
    }
}

_redis = {
    "BACKEND": "django_redis.cache.RedisCache",
    "LOCATION": "redis://%s/0" % os.environ["BENCH_REDIS_ADDR"],
    "KEY_PREFIX": "",
    "OPTIONS": {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"},
}
_memory = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "bench"}
CACHES = {
    "redis": _redis,
    "default": _redis if os.environ.get("BENCH_CACHE") == "redis" else _memory,
}
