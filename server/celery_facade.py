"""The one place the gateway talks to Celery.

Every Celery call blocks on the network (publish, revoke broadcast, result
read), so each one runs in a bounded thread pool owned by this facade and is
awaited with a timeout. The rest of the server only awaits; the event loop
never touches the broker. Publishes that arrive together also leave together
(stirfried.server.publish_batcher), in one round trip where kombu's transport batches.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import celery
import kombu
from celery import states
from celery.backends.base import DisabledBackend
from kombu.exceptions import EncodeError
from kombu.messaging import Producer

from stirfried import protocol
from stirfried.server.errors import CeleryUnavailable, InvalidRequest, Refusal, ResultBackendMissing
from stirfried.server.metrics import GatewayMetrics
from stirfried.server.publish_batcher import Batcher, Outcomes, Settled

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Tasks one publish batch carries at most.
MAX_BATCH = 256


@dataclasses.dataclass(frozen=True)
class PlannedTask:
    """A task ready to publish: the final arguments and a task id chosen up front."""

    name: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    task_id: str
    protected: tuple[str, ...] = ()
    """Arguments only the gateway sets; the worker refuses them when they come positionally."""
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Celery options: ``countdown``, ``eta``, ``expires``, ``priority``, ``queue``."""

    @property
    def headers(self) -> dict[str, Any]:
        """The message headers that carry ``protected`` to the worker."""
        return {protocol.PROTECTED_ARGUMENTS_HEADER: list(self.protected)} if self.protected else {}


@dataclasses.dataclass(frozen=True)
class PublishPlan:
    """The main task and the tasks that run after it, in execution order."""

    main: PlannedTask
    followers: tuple[PlannedTask, ...] = ()


class PublishGate:
    """Holds a publish in its thread, right before the task is sent, until it may exist.

    Opened (or aborted) from the event loop; waited on in the publish thread, so the
    thread's start-up and message building overlap whatever the task must wait for
    (its event subscription: :mod:`stirfried.server.subscriptions`).
    """

    def __init__(self) -> None:
        self._decided = threading.Event()
        self._aborted = False

    def open(self) -> None:
        """The task may be sent."""
        self._decided.set()

    def abort(self) -> None:
        """The task must not be sent (its scheduling was given up)."""
        self._aborted = True
        self._decided.set()

    def wait(self, timeout: float) -> bool:
        """Block until opened or aborted, or ``timeout`` seconds passed; whether it was decided."""
        return self._decided.wait(timeout)

    @property
    def aborted(self) -> bool:
        return self._aborted


class PublishAborted(Exception):
    """A publish whose gate was aborted: the task was not sent."""


@dataclasses.dataclass(frozen=True)
class TaskState:
    """A task's state and its result (an exception instance for failed tasks)."""

    task_id: str
    state: str
    result: Any
    name: str | None = None
    """The task's name, when the backend keeps it (``result_extended``)."""
    done_at: float | None = None
    """When the task reached its final state (Unix time), when the backend says."""

    @property
    def failed(self) -> bool:
        """True when ``result`` is an error rather than a return value."""
        return self.state in states.PROPAGATE_STATES or self.state == states.RETRY


class CeleryFacade:
    """Async access to a Celery app's publish, revoke and result APIs."""

    def __init__(self, app: celery.Celery, threads: int, timeout: float, metrics: GatewayMetrics) -> None:
        self._app = app
        self._timeout = timeout
        self._metrics = metrics
        # Publishes have threads of their own: a flood of revokes (each a broadcast to
        # every worker) or reads from a hung result backend must not take their capacity.
        self._publish_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="stirfried-publish"
        )
        call_threads = max(2, threads // 2)
        self._call_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=call_threads, thread_name_prefix="stirfried-call"
        )
        # Calls queued beyond this are refused at once (a hung backend would otherwise
        # queue every read until each times out).
        self._max_pending_calls = 4 * call_threads
        self._pending_calls = 0
        # Kombu retries a publish while the broker is unreachable; keep the whole
        # attempt inside our own timeout so a refused publish is final.
        self._retry_policy = {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": min(0.2, timeout / 4),
            "interval_max": min(0.5, timeout / 4),
        }
        self._batching = _transport_batches(app)
        # Batching transports: two batches in flight, so one slow round trip does
        # not hold everything up. Others publish one message per thread, as before.
        self._publishes: Batcher[tuple[PublishPlan, PublishGate | None]] = Batcher(
            self._publish_batch,
            max_batch=MAX_BATCH if self._batching else 1,
            max_in_flight=min(2, threads) if self._batching else threads,
        )

    @property
    def app(self) -> celery.Celery:
        return self._app

    async def publish(
        self, plan: PublishPlan, settled: Settled | None = None, gate: PublishGate | None = None
    ) -> str:
        """Send the planned task (and its chain); return the main task's id.

        Concurrent publishes leave together (see stirfried.server.publish_batcher): on a
        broker whose transport batches (Redis), one round trip carries them all.
        ``settled`` learns whether it was sent, even after this call timed out. The
        thread waits for ``gate``, at most half the timeout, right before it sends; an
        aborted gate fails the publish with PublishAborted.
        """
        await self._bounded("publish", "publish the task", self._publishes.send((plan, gate), settled))
        return plan.main.task_id

    def queue_of(self, name: str, args: Any, kwargs: Any) -> str | None:
        """The queue this gateway's ``send_task`` will put a task in: its ``task_routes``',
        else Celery's default queue. None when that is not a queue's name: a route by
        exchange and routing key, or a router that fails (the publish will say why)."""
        try:
            route = self._app.amqp.router.route({}, name, args, kwargs)
        except Exception:  # a task_routes function's own error, or QueueNotFound
            return None
        queue = route.get("queue")
        if isinstance(queue, kombu.Queue):
            return str(queue.name) if queue.name else None
        if route.get("exchange") is not None or route.get("routing_key") is not None:
            return None
        return str(queue or self._app.conf.task_default_queue)

    async def revoke(self, task_id: str, terminate: bool = False, signal: str | None = None) -> None:
        """Ask every worker to drop the task if it has not started yet; with ``terminate``,
        to stop it if it runs (Celery sends ``signal``, SIGTERM by default, to its process)."""
        options: dict[str, Any] = {"terminate": True, "signal": signal or "SIGTERM"} if terminate else {}
        await self._run(
            "revoke", "revoke the task", functools.partial(self._app.control.revoke, **options), task_id
        )

    async def task_state(self, task_id: str) -> TaskState:
        """Read a task's state and result from the result backend."""
        return await self._run("result", "read the task result", self._read_state_blocking, task_id)

    async def check_broker(self) -> None:
        """Raise CeleryUnavailable unless the broker accepts a connection in time."""
        await self._run("broker_check", "reach the broker", self._check_broker_blocking)

    async def close(self) -> None:
        """Let running calls finish, then release the thread pool and broker connections."""
        await self._publishes.drain()
        await asyncio.to_thread(self._close_blocking)

    def _close_blocking(self) -> None:
        self._publish_executor.shutdown(wait=True, cancel_futures=False)
        self._call_executor.shutdown(wait=True, cancel_futures=True)
        self._app.close()

    async def _run(self, operation: str, what: str, function: Callable[..., T], *args: Any) -> T:
        """Run a revoke, result read or broker check on the call threads, bounded in time."""
        if self._pending_calls >= self._max_pending_calls:
            raise CeleryUnavailable(f"could not {what}: the gateway's Celery calls are all busy")
        loop = asyncio.get_running_loop()
        self._pending_calls += 1
        future = loop.run_in_executor(self._call_executor, function, *args)
        future.add_done_callback(self._call_finished)
        # Shielded: a call that timed out still runs to its end in its thread.
        return await self._bounded(operation, what, asyncio.shield(future))

    def _call_finished(self, _future: asyncio.Future[Any]) -> None:
        self._pending_calls -= 1

    async def _bounded(self, operation: str, what: str, call: Awaitable[T]) -> T:
        """Await ``call`` within the broker timeout, counted in the metrics, errors translated."""
        loop = asyncio.get_running_loop()
        self._metrics.executor_pending.inc()
        started = loop.time()
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except Refusal:
            raise
        except EncodeError as error:
            raise InvalidRequest(f"the task's arguments cannot be serialized: {error}") from error
        except TimeoutError as error:
            raise CeleryUnavailable(
                f"could not {what}: the broker did not answer within {self._timeout:g} s"
            ) from error
        except Exception as error:
            logger.warning("could not %s: %r", what, error)
            raise CeleryUnavailable(
                f"could not {what}: {type(error).__name__} from the broker or result backend"
            ) from error
        finally:
            self._metrics.executor_pending.dec()
            self._metrics.celery_call_seconds.labels(operation).observe(loop.time() - started)

    def _publish_batch(self, plans: list[tuple[PublishPlan, PublishGate | None]]) -> asyncio.Future[Outcomes]:
        # A plain function returning the executor's future: no task of its own, one loop
        # step less between a client's request and the broker.
        self._metrics.publish_batch_size.observe(len(plans))
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._publish_executor, self._publish_batch_blocking, plans)

    def _publish_batch_blocking(self, plans: list[tuple[PublishPlan, PublishGate | None]]) -> Outcomes:
        """Publish ``plans``, in one broker round trip where the transport batches.

        A message that cannot be encoded, or whose gate was aborted, fails alone. In a
        batch, any other error (or a failed flush, after which delivery is uncertain)
        fails all of it; without batching each message succeeds or fails on its own.
        """
        outcomes: Outcomes = [None] * len(plans)
        with self._app.producer_or_acquire() as producer:
            if not self._batching or len(plans) == 1:  # one message: no batch to set up and flush
                for index, plan in enumerate(plans):
                    try:
                        self._publish_blocking(producer, plan)
                    except Exception as error:
                        outcomes[index] = error
                return outcomes
            try:
                with producer.batch(max_size=2 * MAX_BATCH):
                    for index, plan in enumerate(plans):
                        try:
                            self._publish_blocking(producer, plan)
                        except (EncodeError, PublishAborted) as error:  # this one alone
                            outcomes[index] = error
            except Exception as error:
                return [outcome or error for outcome in outcomes]
        return outcomes

    def _publish_blocking(self, producer: Producer, gated: tuple[PublishPlan, PublishGate | None]) -> None:
        """Publish the plan's main task (its followers ride along as Celery links).

        What ``Celery.send_task`` does, minus the per-call work a gateway never
        needs: its result backend hook (``on_task_call``) would subscribe the
        gateway to every task's result channel (one more Redis round trip per
        publish, and subscriptions that pile up, since the gateway reads results
        with ``get_task_meta`` instead), and it builds an ``AsyncResult`` and
        looks for a parent task. Routing (``task_routes``) and the message format
        are Celery's own.
        """
        plan, gate = gated
        link = None
        for follower in reversed(plan.followers):
            signature = self._app.signature(
                follower.name,
                args=follower.args,
                kwargs=dict(follower.kwargs),
                task_id=follower.task_id,
                headers=follower.headers,
                **_link_options(follower.options),
            )
            if link is not None:
                signature.link(link)
            link = signature
        main = plan.main
        amqp = self._app.amqp
        kwargs = dict(main.kwargs)
        routing = {key: main.options[key] for key in ("queue", "priority") if key in main.options}
        options = amqp.router.route(routing, main.name, main.args, kwargs)
        message = amqp.create_task_message(
            main.task_id,
            main.name,
            main.args,
            kwargs,
            countdown=main.options.get("countdown"),
            eta=main.options.get("eta"),
            expires=main.options.get("expires"),
            callbacks=[link] if link is not None else None,
            reply_to=self._app.thread_oid,
            create_sent_event=self._app.conf.task_send_sent_event,
        )
        message.headers.update(main.headers)
        if gate is not None:
            if not gate.wait(self._timeout / 2):
                logger.warning(
                    "publishing task %s without its live events: their subscription was not "
                    "confirmed within %g s",
                    main.task_id,
                    self._timeout / 2,
                )
            if gate.aborted:
                raise PublishAborted(f"the publish of task {main.task_id} was given up")
        amqp.send_task_message(
            producer, main.name, message, retry=True, retry_policy=self._retry_policy, **options
        )

    def _check_broker_blocking(self) -> None:
        # A fresh connection, not one from the publish pool: a pooled connection that
        # is already open answers "connected" without a word to the broker (a Redis
        # broker could be gone for seconds and this check would not notice).
        with self._app.connection_for_write() as connection:
            # kombu types the timeout as int; it takes any number of seconds.
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=self._timeout)  # type: ignore[arg-type]
            connection.default_channel  # noqa: B018 -- opening a channel talks to the broker (Redis: PING)

    def _read_state_blocking(self, task_id: str) -> TaskState:
        backend = self._app.backend  # built on first use, which reads files: in this thread
        if isinstance(backend, DisabledBackend):
            raise ResultBackendMissing("no Celery result backend is configured")
        meta = backend.get_task_meta(task_id)
        return TaskState(
            task_id=task_id,
            state=meta["status"],
            result=meta.get("result"),
            name=meta.get("name"),
            done_at=_timestamp(meta.get("date_done")),
        )


def _timestamp(date_done: Any) -> float | None:
    """A result backend's ``date_done`` (datetime or ISO string; naive means UTC) as Unix time."""
    if isinstance(date_done, str):
        try:
            date_done = datetime.datetime.fromisoformat(date_done)
        except ValueError:
            return None
    if not isinstance(date_done, datetime.datetime):
        return None
    if date_done.tzinfo is None:
        date_done = date_done.replace(tzinfo=datetime.UTC)
    return date_done.timestamp()


def _link_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A chained task's options as signature options: times as ISO 8601 (a link travels
    inside the message body, which must serialize; Celery parses them back)."""
    return {
        key: value.isoformat() if isinstance(value, datetime.datetime) else value
        for key, value in options.items()
    }


def _transport_batches(app: celery.Celery) -> bool:
    """Whether the broker's kombu transport can send many publishes in one round trip
    (``Producer.batch``, kombu 5.7: Redis yes, py-amqp no). Opens no connection."""
    connection = app.connection_for_write()
    try:
        return bool(getattr(connection.transport.implements, "batch_publish", False))
    finally:
        connection.release()
