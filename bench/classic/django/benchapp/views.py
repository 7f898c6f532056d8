"""The benchmark endpoints, the same work as bench/workload describes.

JSON is written compact (no spaces) so every target's bodies match.
"""
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.core.cache import caches
from django.http import HttpResponseBadRequest, HttpResponseNotAllowed, JsonResponse
from django_redis import get_redis_connection

from .models import World

COMPACT = {"separators": (",", ":")}
ROWS = 1000
CACHE_TTL = 300
QUEUE = "classic:bench"  # classic.QueueKey


def _json(obj):
    return JsonResponse(obj, json_dumps_params=COMPACT)


def hello(request):
    return _json({"message": "hello, world"})


@dataclass
class Item:
    """Mirrors workload.Item / plugins/jsonapi's Item."""

    id: int
    name: str
    price: float
    tags: list = field(default_factory=list)
    in_stock: bool = False
    created_at: str = ""


EPOCH = datetime(2024, 1, 1)
TAGS = ["red", "green", "blue", "small", "large", "sale"]


def _item(i):
    h = (i * 2654435761) & 0xFFFFFFFF
    return Item(
        id=i,
        name="item-%05d" % i,
        price=(h % 100000) / 100,
        tags=[TAGS[h % 6], TAGS[(h >> 8) % 6]],
        in_stock=h % 3 != 0,
        created_at=(EPOCH + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def jsonstruct(request):
    items = [asdict(_item(i)) for i in range(1, 11)]
    return _json({"count": len(items), "items": items})


def _id(request):
    try:
        i = int(request.GET["id"])
    except (KeyError, ValueError):
        return None
    return i if 1 <= i <= ROWS else None


def db(request):
    i = _id(request)
    if i is None:
        return HttpResponseBadRequest("id must be 1..%d" % ROWS)
    w = World.objects.get(id=i)
    cached = caches["redis"].get("world:%d" % i)
    return _json({"id": w.id, "randomNumber": w.randomnumber, "cached": cached})


def cached(request):
    i = _id(request)
    if i is None:
        return HttpResponseBadRequest("id must be 1..%d" % ROWS)
    cache = caches["default"]
    key = "row:%d" % i
    row = cache.get(key)
    if row is None:
        w = World.objects.get(id=i)
        row = {"id": w.id, "randomNumber": w.randomnumber}
        cache.set(key, row, CACHE_TTL)
    return _json(row)


def queue(request):
    """Submit a job: push it on a Redis list, the broker half of what
    celery's delay() or RQ's enqueue() do (they do more)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    get_redis_connection("redis").lpush(QUEUE, request.body)
    return _json({"queued": True})
