"""Dramatiq's Redis broker, with the settings a fleet of minutes-long GPU jobs needs.

Dramatiq acknowledges a message only after its actor returns; a worker whose heartbeat stops
has its unacknowledged messages put back on the queue (at-least-once); exceptions are retried
with backoff. facedrop adds what at-least-once needs on top (``watcher.fleet.ledger``): attempt
numbers, results under job + attempt, and "the first commit wins".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware import Middleware, Retries, TimeLimit
from redis.backoff import NoBackoff
from redis.retry import Retry

from watcher.config import QueueSettings

QUEUE = "facedrop"
ACTOR = "facedrop_job"
# Retries are decided by facedrop's own counted attempts (daemon.max_attempts), which fail the
# job before Dramatiq would give up on the message (a message Dramatiq gives up on is dead).
MAX_RETRIES = 10_000
# The fleet's server failing, as the rest of the fleet catches it (only this module and the
# ledger name Redis): any error, and the narrower "cannot be reached now" that is waited out.
BROKER_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, BrokerConnectionError)
UNREACHABLE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError,
                                            BrokerConnectionError)


def make_broker(
    settings: QueueSettings,
    *,
    retry_backoff_seconds: float = 5.0,
    extra: tuple[Middleware, ...] = (),
) -> RedisBroker:
    """A Redis broker on ``settings.url``; nothing is sent until used."""
    middleware: list[Middleware] = [
        # Jobs take minutes, not seconds: Dramatiq's default 10-minute limit would interrupt a
        # long render. The limit stays (a hung job must end) but is hours, from the config.
        TimeLimit(time_limit=int(settings.job_time_limit_seconds * 1000), interval=1000),
        # A failed attempt (an exception, not an input error) is sent again after a backoff
        # that doubles from daemon.retry_backoff_seconds, as the single-machine daemon does.
        Retries(max_retries=MAX_RETRIES, min_backoff=max(1, int(retry_backoff_seconds * 1000)),
                max_backoff=max(1, int(retry_backoff_seconds * 1000)) * 64),
        *extra,
    ]
    return RedisBroker(
        client=redis_client(settings),
        namespace=f"{settings.namespace}-dramatiq",
        middleware=middleware,
        # A worker is dead when it has sent no command for this long (every worker process
        # talks to Redis at least once a second, even while a job runs: its delay-queue
        # consumer polls). Its unacknowledged job then goes back to the queue. Dramatiq's
        # default is 60 s; 30 s (or seconds, in tests) gets a killed worker's job redone
        # within about a minute.
        heartbeat_timeout=int(settings.heartbeat_timeout_seconds * 1000),
        # Dead workers are looked for by a random share of queue commands (per million).
        # Dramatiq's default (0.1 %) can leave a dead worker's job waiting for minutes in a
        # small fleet; 10 % of commands costs a few cheap Lua lines.
        maintenance_chance=settings.maintenance_chance,
    )


QUICK_SECONDS = 0.4  # status and the intake's reachability probe: an answer within 1 s


def redis_client(settings: QueueSettings, *, quick: bool = False) -> redis.Redis:
    """A client that gives up on an unreachable server within seconds (then: a fault).

    ``quick``: for questions that must be answered at once (``facedrop status``, the intake's
    "is the fleet there?" probe): short timeouts and no retries (redis-py retries 3 times by
    default, which made one status call take 8-14 s while Redis was away).
    """
    if quick:
        return redis.Redis.from_url(settings.url, socket_timeout=QUICK_SECONDS,
                                    socket_connect_timeout=QUICK_SECONDS,
                                    retry=Retry(NoBackoff(), 0))
    return redis.Redis.from_url(settings.url, socket_timeout=10, socket_connect_timeout=3,
                                health_check_interval=5)


def ping(broker: RedisBroker) -> None:
    """Ask the broker's server for an answer now; one of ``BROKER_ERRORS`` if none comes."""
    broker.client.ping()


def declare(broker: dramatiq.Broker,
            handler: Callable[[dict[str, Any]], None]) -> dramatiq.Actor[Any, Any]:
    """Register the job actor on ``broker`` (the worker side)."""
    decorate = dramatiq.actor(broker=broker, actor_name=ACTOR, queue_name=QUEUE,
                              max_retries=MAX_RETRIES)
    return decorate(handler)


def job_message(payload: dict[str, Any]) -> dramatiq.Message[Any]:
    """The Dramatiq message for one job (ids and hashes only)."""
    return dramatiq.Message(queue_name=QUEUE, actor_name=ACTOR, args=(payload,), kwargs={},
                            options={})
