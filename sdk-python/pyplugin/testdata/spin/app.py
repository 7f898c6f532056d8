"""Runaway handlers, for the deadline test."""

import os

import wasmcorn

app = wasmcorn.App(prefix="/py-spin")

# Differs between instances: tells the test whether an instance was reused.
INSTANCE = os.urandom(8).hex()


@app.get("/")
def spin(request):
    # Stopped softly: DeadlineExceeded at the next eval-breaker check.
    while True:
        pass


@app.get("/spin-c")
def spin_c(request):
    # One C call that never reaches the eval breaker: the hard stop ends it.
    return {"sum": sum(range(10**15))}


@app.get("/swallow")
def swallow(request):
    # Catches the soft stop: the hard stop ends it.
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass


@app.get("/ok")
def ok(request):
    return {"ok": True, "instance": INSTANCE}
