"""Native tests of py-jobs: submit through HTTP, then run the queued jobs."""

from app import app
from wasmcorn.testing import FakeHost, TestClient


def test_produce_and_consume():
    with FakeHost(queues=("py-jobs",)) as host:
        c = TestClient(app, host=host)
        for n in (2, 3):
            r = c.post("/py-jobs/jobs", json={"n": n})
            assert r.status == 202 and r.get_json()["id"].startswith("job-")
        assert c.post("/py-jobs/jobs", json={"n": "x"}).status == 422
        for queue, job_id, payload, delay in list(host.jobs):
            assert c.job(queue, payload, job_id=job_id) == (0, "")
        assert c.job("py-jobs", '{"tick": true}') == (0, "")
        assert c.job("py-jobs", '{"m": 1}') == (2, "payload has no integer n: {'m': 1}")
        assert c.get("/py-jobs/stats").get_json() == {"processed": 2, "sum": 13, "ticks": 1}
