"""A Django database backend over the host's SQL: ENGINE "wasmcorn.django".

    DATABASES = {"default": {"ENGINE": "wasmcorn.django", "NAME": "default"}}

NAME is a database the plugin's manifest grants. See base.py for what works
and what does not.
"""
