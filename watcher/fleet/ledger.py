"""facedrop's own Redis keys beside Dramatiq's: attempts, owners, progress, cancels, workers.

Every key starts with ``queue.namespace``:

- ``job:<key>`` (hash): ``attempt`` (runs started: unique per run, names its results),
  ``counted`` (runs that count toward ``max_attempts``: not given back), ``owner`` (the worker
  running it now). Owner: the intake (``retire``); every write also sets a 7-day expiry, so
  a worker that resumes after the job was retired (stopped, then continued) cannot leave one
  behind for ever.
- ``sent`` (set): job keys the intake has handed to Dramatiq. Owner: the intake (``retire``).
- ``progress:<key>`` (hash): attempt, stage, progress, worker of the running attempt. Expires
  after ``progress_ttl`` (a few heartbeats); the running worker's heartbeat renews it.
- ``cancel`` (set): job keys ``facedrop cancel`` asked to stop. Owner: the intake (``retire``).
- ``worker:<id>`` (hash, expires after the heartbeat timeout): the worker's card for
  ``facedrop status``; ``workers`` (set) lists the ids (``drop_worker``, and ``workers`` drops
  ids whose card expired).
- ``names`` (hash): job key -> JSON name and outbox folder, for ``facedrop cancel NAME``.
  Owner: the intake (``retire``).
- ``finished:<key>`` (expires after 7 days): the intake has put the job in the outbox; a late
  redelivery of its message is acknowledged without running.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis

from watcher.config import QueueSettings
from watcher.fleet.broker import redis_client

# Take over a job unless a live worker (its card still exists) owns it; atomic in Redis.
CLAIM = """
local owner = redis.call('hget', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] and redis.call('exists', ARGV[2] .. owner) == 1 then
    return owner
end
redis.call('hset', KEYS[1], 'owner', ARGV[1])
redis.call('expire', KEYS[1], ARGV[3])
return ''
"""
RETIRED_SECONDS = 7 * 24 * 3600
JOB_SECONDS = RETIRED_SECONDS  # a job:<key> nobody touched for this long is an orphan
RELEASE = """
if redis.call('hget', KEYS[1], 'owner') == ARGV[1] then redis.call('hdel', KEYS[1], 'owner') end
return 0
"""


class Ledger:
    """One Redis client and the key layout; every method is one round trip or a pipeline."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.ns = namespace
        self._claim = client.register_script(CLAIM)
        self._release = client.register_script(RELEASE)

    @classmethod
    def open(cls, settings: QueueSettings, *, quick: bool = False) -> Ledger:
        """The ledger of the fleet ``settings`` name (``quick``: see ``redis_client``)."""
        return cls(redis_client(settings, quick=quick), settings.namespace)

    def close(self) -> None:
        self.client.close()

    def _k(self, *parts: str) -> str:
        return ":".join((self.ns, *parts))

    def ping(self) -> bool:
        return bool(self.client.ping())

    # ---- the intake's side ---------------------------------------------------------------
    def register(self, key: str, name: str, outbox: str) -> None:
        self.client.hset(self._k("names"), key, json.dumps({"name": name, "outbox": outbox}))

    def unsent(self, keys: list[str]) -> list[str]:
        if not keys:
            return []
        flags = self.client.smismember(self._k("sent"), keys)
        return [k for k, sent in zip(keys, flags, strict=True) if not sent]

    def mark_sent(self, key: str) -> None:
        self.client.sadd(self._k("sent"), key)

    def progress_of(self, keys: list[str]) -> dict[str, dict[str, str]]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._k("progress", key))
        rows = pipe.execute() if keys else []
        return {k: _text(r) for k, r in zip(keys, rows, strict=True) if r}

    def retire(self, key: str) -> None:
        """The job is finished in the outbox: drop its keys, keep a mark that it is finished.

        A message still in Dramatiq for it (a worker killed after its commit, before its ack)
        is then acknowledged without running the job again. The mark lasts as long as Dramatiq
        keeps dead messages (7 days).
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._k("job", key), self._k("progress", key))
        pipe.set(self._k("finished", key), "1", ex=RETIRED_SECONDS)
        pipe.srem(self._k("sent"), key)
        pipe.srem(self._k("cancel"), key)
        pipe.hdel(self._k("names"), key)
        pipe.execute()

    def finished(self, key: str) -> bool:
        return bool(self.client.exists(self._k("finished", key)))

    # ---- cancel --------------------------------------------------------------------------
    def find(self, wanted: str) -> list[tuple[str, str, str]]:
        """(key, name, outbox) of the jobs whose key, name or outbox folder is ``wanted``."""
        found = []
        for raw_key, raw in self.client.hgetall(self._k("names")).items():
            key = _s(raw_key)
            data = json.loads(_s(raw))
            if wanted in (key, data["name"], data["outbox"]):
                found.append((key, data["name"], data["outbox"]))
        return sorted(found)

    def request_cancel(self, key: str) -> None:
        self.client.sadd(self._k("cancel"), key)

    def cancel_requested(self, key: str) -> bool:
        return bool(self.client.sismember(self._k("cancel"), key))

    def cancelled(self, keys: list[str]) -> set[str]:
        if not keys:
            return set()
        flags = self.client.smismember(self._k("cancel"), keys)
        return {k for k, flag in zip(keys, flags, strict=True) if flag}

    # ---- the worker's side ---------------------------------------------------------------
    def claim(self, key: str, worker: str) -> str:
        """Own the job; returns "" or the id of the live worker that already runs it."""
        return _s(self._claim(keys=[self._k("job", key)],
                              args=[worker, self._k("worker", ""), JOB_SECONDS]))

    def counted(self, key: str) -> int:
        """Runs of the job that counted toward ``max_attempts`` so far."""
        return int(self.client.hget(self._k("job", key), "counted") or 0)

    def owner_alive(self, key: str) -> bool:
        owner = self.client.hget(self._k("job", key), "owner")
        return owner is not None and bool(self.client.exists(self._k("worker", _s(owner))))

    def begin(self, key: str) -> tuple[int, int]:
        """Count a run: (attempt, counted), incremented together before any work starts."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(self._k("job", key), "attempt", 1)
        pipe.hincrby(self._k("job", key), "counted", 1)
        pipe.expire(self._k("job", key), JOB_SECONDS)
        attempt, counted, _ = pipe.execute()
        return int(attempt), int(counted)

    def next_attempt(self, key: str) -> int:
        """An attempt number for a result committed without a counted run (a cancel, a give-up)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(self._k("job", key), "attempt", 1)
        pipe.expire(self._k("job", key), JOB_SECONDS)
        return int(pipe.execute()[0])

    def give_back(self, key: str, worker: str) -> None:
        """The run did not count (shutdown, a worker fault): uncount it and let go."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(self._k("job", key), "counted", -1)
        pipe.expire(self._k("job", key), JOB_SECONDS)
        pipe.delete(self._k("progress", key))
        pipe.execute()
        self.release(key, worker)

    def release(self, key: str, worker: str) -> None:
        self._release(keys=[self._k("job", key)], args=[worker])

    def report_progress(self, key: str, attempt: int, stage: str, fraction: float,
                        worker: str, ttl: float = 60.0) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self._k("progress", key), mapping={
            "attempt": attempt, "stage": stage, "progress": round(fraction, 4), "worker": worker,
        })
        pipe.pexpire(self._k("progress", key), max(1, int(ttl * 1000)))
        pipe.execute()

    def renew_progress(self, key: str, ttl: float) -> None:
        """The running worker is alive: keep its progress (never creates the key)."""
        self.client.pexpire(self._k("progress", key), max(1, int(ttl * 1000)))

    # ---- worker cards --------------------------------------------------------------------
    def publish_worker(self, worker: str, card: Mapping[str, Any], ttl: float) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._k("worker", worker))
        pipe.hset(self._k("worker", worker), mapping={k: str(v) for k, v in card.items()})
        pipe.pexpire(self._k("worker", worker), max(1, int(ttl * 1000)))
        pipe.sadd(self._k("workers"), worker)
        pipe.execute()

    def drop_worker(self, worker: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._k("worker", worker))
        pipe.srem(self._k("workers"), worker)
        pipe.execute()

    def workers(self) -> list[dict[str, str]]:
        """Every live worker's card (expired ones are dropped from the list)."""
        ids = sorted(_s(w) for w in self.client.smembers(self._k("workers")))
        pipe = self.client.pipeline(transaction=False)
        for worker in ids:
            pipe.hgetall(self._k("worker", worker))
        cards = []
        for worker, raw in zip(ids, pipe.execute() if ids else [], strict=True):
            if raw:
                cards.append({"id": worker, **_text(raw)})
            else:
                self.client.srem(self._k("workers"), worker)
        return cards


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}
