"""Django on the host's services.

The database backend, ENGINE "wasmcorn.django" (base.py):

    DATABASES = {"default": {"ENGINE": "wasmcorn.django", "NAME": "default"}}

NAME is a database the plugin's manifest grants. The cache backend (cache.py):

    CACHES = {"default": {"BACKEND": "wasmcorn.django.cache.HostCache"}}

Each module says what works and what does not.
"""
