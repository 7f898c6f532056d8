"""The job queue (host op queue.submit).

    from wasmcorn import queue
    job_id = queue.submit("emails", {"to": "a@example.com"})

Queues must be granted in the manifest. Jobs are delivered at least once
to the plugin that registers a handler for the queue (App.job); delay
postpones the first run by that many seconds.
"""

import json as _json

from . import _abi, _host


def submit(queue, payload=b"", delay=0):
    """Queue a job with payload (bytes, str, or any JSON-serializable
    object) and return its id."""
    if isinstance(payload, str):
        data = payload.encode("utf-8")
    elif isinstance(payload, (bytes, bytearray, memoryview)):
        data = bytes(payload)
    else:
        data = _json.dumps(payload, separators=(",", ":")).encode("utf-8")
    ms = int(round(float(delay) * 1000))
    if ms < 0:
        raise ValueError("delay must be >= 0 seconds, got %r" % delay)
    return _host.call(_abi.OP_QUEUE_SUBMIT, queue, data, ms)[0]
