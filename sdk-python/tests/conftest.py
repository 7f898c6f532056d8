"""Native tests of the wasmcorn Python SDK (Debian's python3 + pytest).

    /usr/bin/python3 -m pytest sdk-python/tests
"""

import os
import sys

import pytest

SDK = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(SDK)
if SDK not in sys.path:
    sys.path.insert(0, SDK)


class Clock:
    """A settable clock for FakeHost(clock=...): t is the time in seconds."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return Clock()


def configure_django():
    """Configures Django once for every test module that uses it: the
    database and cache backends over the host (wasmcorn.django)."""
    from django.conf import settings

    if settings.configured:
        return
    import django

    settings.configure(
        DATABASES={"default": {"ENGINE": "wasmcorn.django", "NAME": "default"}},
        CACHES={"default": {"BACKEND": "wasmcorn.django.cache.HostCache", "KEY_PREFIX": "t"}},
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()
