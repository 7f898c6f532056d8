"""py-jobs: a job producer and consumer in one plugin.

    POST /py-jobs/jobs        queue a job {"n": <int>} (JSON body), 202 + id
    GET  /py-jobs/stats       how many jobs and ticks were processed

The consumer squares n and keeps the total in the cache; the manifest
(plugins/py-jobs.toml) grants the queue, declares this plugin its consumer
and adds a periodic "tick" job.
"""

import wasmcorn
from wasmcorn import cache, log, queue

app = wasmcorn.App(prefix="/py-jobs")

QUEUE = "py-jobs"


@app.post("/jobs")
def submit(request):
    data = request.json
    if not isinstance(data, dict) or isinstance(data.get("n"), bool) or not isinstance(data.get("n"), int):
        wasmcorn.abort(422, 'send {"n": <integer>}')
    job_id = queue.submit(QUEUE, {"n": data["n"]}, delay=float(request.query.get("delay", "0")))
    return {"id": job_id}, 202


@app.get("/stats")
def stats(request):
    got = cache.get_many(["processed", "sum", "ticks"])
    return {k: int(got.get(k, b"0")) for k in ("processed", "sum", "ticks")}


@app.job(QUEUE)
def consume(job):
    data = job.json()
    if data.get("tick"):
        cache.incr("ticks")
        return
    n = data.get("n")
    if not isinstance(n, int):
        raise wasmcorn.FailJob("payload has no integer n: %r" % (data,))
    cache.incr("sum", n * n)
    cache.incr("processed")
    log.info("job done", job=job.id, n=n, attempt=job.attempt)
