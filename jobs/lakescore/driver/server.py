"""``lakescore driver``: the warm process. One Spark session of one profile, MLflow and Great
Expectations imported at start, and an HTTP API on loopback:

* ``GET /health``: profile, conf folder, code version, uptime, runs served, what runs now;
* ``POST /run`` (:class:`~lakescore.driver.protocol.RunBody`): validate or score a partition,
  or a range; progress streams back as NDJSON and ends with the result.

Every run calls the library function the CLI and the spark-submit jobs call
(:func:`lakescore.run.score_partition`, :func:`lakescore.run.range.score_range`) with
``spark=`` the warm session: one pipeline, whatever started it. Runs execute one at a time in
arrival order (one worker thread): Spark job groups, the MLflow client's global state and
the cached partitions are per process, and one run at a time keeps them the run's own.

Job configs and ``platform.yaml`` are re-read per request, so edits take effect. A request
this driver cannot serve as spark-submit would (another conf folder, another Spark profile,
Spark settings edited since the start) is refused with HTTP 409 and the reason; the caller
falls back to spark-submit. A caller that goes away (its Airflow task was stopped) cancels
its run: a queued run never starts, a running one stops at its next stage before the publish
(its Spark jobs are cancelled) and is recorded in lineage as failed; once the publish began
the run completes, so a partition is never left half-done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import StreamingResponse

from lakescore.config import PlatformConfig, ScoringJob, load_job, load_platform
from lakescore.driver.protocol import MEDIA_TYPE, RunBody, event_line
from lakescore.errors import BadInputError, LakescoreError, ScoringFailure, as_lakescore_error
from lakescore.lakehouse.lineage import AirflowIds, code_version, utcnow
from lakescore.run.progress import ProgressReporter

if TYPE_CHECKING:
    from fastapi import FastAPI
    from pyspark.sql import SparkSession

log = logging.getLogger("lakescore.driver")

# Imported at start so no request pays for them (MLflow ~2.4 s, Great Expectations ~7 s).
WARM_MODULES = (
    "mlflow",
    "great_expectations",
    "lakescore.run.pipeline",
    "lakescore.run.range",
    "lakescore.quality.validation",
)
# A cancelled run stops when it enters any other stage before its publish.
_NEVER_STOP_AT = ("recover", "lineage")
_COMMIT_STAGES = ("publish", "shadow", "lineage")


class Refused(Exception):
    """This driver cannot run the request as spark-submit would: HTTP 409, the caller falls
    back."""


class RunCancelled(ScoringFailure):
    """The caller went away before the run published anything."""


class Ticket:
    """One request: its place in the queue, its events (to the HTTP stream) and whether its
    caller cancelled it. ``emit`` is called from the run's thread; the stream reads on the
    server's event loop."""

    def __init__(
        self, body: RunBody, platform: PlatformConfig, job: ScoringJob, heartbeat_s: float
    ) -> None:
        self.body, self.platform, self.job = body, platform, job
        self.heartbeat_s = heartbeat_s
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.lock = threading.Lock()
        self.state = "queued"  # queued -> running -> done
        self.cancelled = False
        self.committing = False
        self.stage: str | None = None
        self.run_id: str | None = None  # a single partition's, known before it runs
        self.started = time.monotonic()

    def emit(self, kind: str, **fields: Any) -> None:
        line = event_line(kind, **fields)
        with contextlib.suppress(RuntimeError):  # the loop is gone: the server stopped
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, line))

    def enter_stage(self, name: str) -> None:
        """Called as each stage starts; raises :class:`RunCancelled` when the caller went
        away and nothing has been committed yet."""
        with self.lock:
            if name == "check":  # the next partition of a range starts afresh
                self.committing = False
            if self.cancelled and not self.committing and name not in _NEVER_STOP_AT:
                raise RunCancelled(
                    f"cancelled at stage {name}, before publishing: the caller went away "
                    "(its Airflow task was stopped)"
                )
            if name in _COMMIT_STAGES:
                self.committing = True
            self.stage = name

    async def lines(self, queued_ahead: Callable[[Ticket], int]) -> AsyncIterator[bytes]:
        """The response body: every event as it comes, a heartbeat when there is none for
        ``heartbeat_s``, up to and including the result."""
        while True:
            try:
                kind, line = await asyncio.wait_for(self.events.get(), self.heartbeat_s)
            except TimeoutError:
                elapsed = round(time.monotonic() - self.started, 1)
                if self.state == "queued":
                    yield event_line("queued", ahead=queued_ahead(self), elapsed_s=elapsed)
                else:
                    yield event_line("heartbeat", stage=self.stage, elapsed_s=elapsed)
                continue
            yield line
            if kind == "result":
                return


class TicketProgress(ProgressReporter):
    """A run's stage lines and Spark task counts, as events of its ticket."""

    def __init__(self, ticket: Ticket) -> None:
        self.ticket = ticket
        self._last: tuple[int, int] | None = None

    def stage(self, name: str, detail: str = "") -> None:
        self.ticket.enter_stage(name)
        self.ticket.emit("stage", stage=name, detail=detail)

    def tasks(self, done: int, total: int) -> None:
        if total and (done, total) != self._last:
            self._last = (done, total)
            self.ticket.emit("tasks", done=done, total=total)


class WarmDriver:
    """The process's warm state (the session, the profile it was built from) and the FIFO
    of runs, served by one worker thread."""

    def __init__(self, platform: PlatformConfig, profile: str | None = None) -> None:
        from lakescore.spark import spark_conf

        self.platform = platform
        self.profile = profile or platform.spark.default_profile
        try:
            platform.spark.resolved_profile(self.profile)
        except ValueError as exc:
            raise BadInputError(str(exc), key="--profile") from None
        self.spark_conf = spark_conf(platform, self.profile)
        self.spark: SparkSession | None = None
        self.started_at = utcnow()
        self._t0 = time.monotonic()
        self.warm_seconds: dict[str, float] = {}
        self.runs_served = 0
        self.closing = False
        self._cond = threading.Condition()
        self._waiting: list[Ticket] = []
        self._current: Ticket | None = None
        self._worker = threading.Thread(
            target=self._work, name="lakescore-driver-runs", daemon=True
        )
        self.app_id: str | None = None
        self.master: str | None = None

    # ----------------------------------------------------------------- start and stop

    def warm(self) -> None:
        """Start Spark (in a thread) while MLflow and Great Expectations import, then warm
        the Python workers: what every spark-submit task paid, paid once."""
        from lakescore.ml.scoring import warm_python_workers
        from lakescore.spark import get_spark_session

        started: dict[str, Any] = {}

        def start_spark() -> None:
            t0 = time.perf_counter()
            try:
                started["spark"] = get_spark_session(
                    self.platform, self.profile, app_name="lakescore-driver"
                )
            except BaseException as exc:  # handed to the main thread below
                started["error"] = exc
            self.warm_seconds["spark_start"] = round(time.perf_counter() - t0, 2)

        thread = threading.Thread(target=start_spark, name="lakescore-spark-start", daemon=True)
        thread.start()
        for name in WARM_MODULES:
            t0 = time.perf_counter()
            import_module(name)
            self.warm_seconds[f"import {name}"] = round(time.perf_counter() - t0, 2)
        thread.join()
        if "error" in started:
            raise started["error"]
        self.spark = started["spark"]
        self.app_id = self.spark.sparkContext.applicationId
        self.master = self.spark.sparkContext.master
        t0 = time.perf_counter()
        warm_python_workers(self.spark)
        self.warm_seconds["python_workers"] = round(time.perf_counter() - t0, 2)
        self._worker.start()

    def close(self, timeout: float = 60.0) -> None:
        """Refuse new runs, drop the queued ones, cancel the running one (it stops before
        its publish, or completes it), then stop Spark."""
        with self._cond:
            self.closing = True
            waiting, self._waiting = self._waiting, []
            current = self._current
            self._cond.notify_all()
        for ticket in waiting:
            ticket.emit(
                "result",
                status="failed",
                exit_code=1,
                error=f"{ticket.body.what}: the driver stopped before the run started",
                run_id=None,
            )
        if current is not None:
            self.cancel(current)
        if self._worker.is_alive():
            self._worker.join(timeout)
        if self.spark is not None:
            with contextlib.suppress(Exception):
                self.spark.stop()

    # ----------------------------------------------------------------- requests

    def admit(self, body: RunBody) -> tuple[PlatformConfig, ScoringJob]:
        """Re-read the platform and the job (edits take effect); :class:`Refused` when this
        driver is not where the request should run."""
        from lakescore.spark import spark_conf

        own = self.platform.conf_dir
        if body.conf_dir and str(Path(body.conf_dir).resolve()) != own:
            raise Refused(f"conf folder {body.conf_dir} is not this driver's ({own})")
        platform = load_platform(own)
        job = load_job(body.job, platform=platform)
        profile = job.spark_profile or platform.spark.default_profile
        for wanted in {profile, body.profile or profile}:
            if wanted != self.profile:
                raise Refused(
                    f"job {job.name!r} runs on Spark profile {wanted!r}; this driver holds a "
                    f"session of profile {self.profile!r}"
                )
        if spark_conf(platform, self.profile) != self.spark_conf:
            raise Refused(
                f"the Spark settings of profile {self.profile!r} changed since this driver "
                "started (conf/platform.yaml or the jars): restart it"
            )
        return platform, job

    def submit(self, ticket: Ticket) -> None:
        with self._cond:
            if self.closing:
                raise Refused("the driver is stopping")
            ahead = len(self._waiting) + (self._current is not None)
            self._waiting.append(ticket)
            self._cond.notify_all()
        ticket.emit("accepted", ahead=ahead, profile=self.profile, app_id=self.app_id)
        log.info("queued %s (%d ahead)", ticket.body.what, ahead)

    def ahead_of(self, ticket: Ticket) -> int:
        with self._cond:
            if ticket not in self._waiting:
                return 0
            return self._waiting.index(ticket) + (self._current is not None)

    def cancel(self, ticket: Ticket) -> None:
        """The caller went away: a queued run never starts; a running one stops at its next
        stage before the publish, its Spark jobs cancelled now."""
        with ticket.lock:
            if ticket.state == "done" or ticket.cancelled:
                return
            ticket.cancelled = True
            log.info("caller of %s went away: cancelling (%s)", ticket.body.what, ticket.state)
            if ticket.state == "running" and not ticket.committing and self.spark is not None:
                with contextlib.suppress(Exception):
                    self.spark.sparkContext.cancelAllJobs()  # one run at a time: all are its

    def health(self) -> dict[str, Any]:
        with self._cond:
            running = self._current.body.what if self._current is not None else None
            queued = len(self._waiting)
        return {
            "status": "stopping" if self.closing else "ok",
            "profile": self.profile,
            "conf_dir": self.platform.conf_dir,
            "code_version": code_version(),
            "started_at": self.started_at.isoformat(),
            "uptime_s": round(time.monotonic() - self._t0, 1),
            "runs_served": self.runs_served,
            "running": running,
            "queued": queued,
            "spark_app_id": self.app_id,
            "spark_master": self.master,
            "pid": os.getpid(),
            "warm_seconds": self.warm_seconds,
        }

    # ----------------------------------------------------------------- the runs

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self.closing:
                    self._cond.wait()
                if self.closing:
                    return
                ticket = self._waiting.pop(0)
                with ticket.lock:
                    if ticket.cancelled:
                        ticket.state = "done"
                        continue
                    ticket.state = "running"
                self._current = ticket
            try:
                self._execute(ticket)
            finally:
                with self._cond:
                    self._current = None
                    self.runs_served += 1

    def _execute(self, ticket: Ticket) -> None:
        body = ticket.body
        t0 = time.perf_counter()
        log.info("running %s (airflow %s)", body.what, body.airflow.run_id or "-")
        try:
            result = self._range(ticket) if body.ranged else self._partition(ticket)
        except Exception as exc:
            err = as_lakescore_error(exc, job=body.job, ds=body.ds)
            result = {
                "status": "failed",
                "exit_code": err.exit_code,
                "error": _one_line(err),
                "run_id": ticket.run_id,
            }
        finally:
            with contextlib.suppress(Exception):  # a failed run may leave its cache behind
                assert self.spark is not None
                self.spark.catalog.clearCache()
        with ticket.lock:
            ticket.state = "done"
        ticket.emit("result", **result)
        log.info(
            "%s: %s (exit %d) in %.1fs%s",
            body.what,
            result["status"],
            result["exit_code"],
            time.perf_counter() - t0,
            f": {result['error']}" if result.get("error") else "",
        )

    def _partition(self, ticket: Ticket) -> dict[str, Any]:
        from lakescore.lakehouse.tables import parse_partition_date
        from lakescore.run import new_run_id, score_partition

        body, job = ticket.body, ticket.job
        assert body.ds is not None
        day = parse_partition_date(
            body.ds, job=job.name, max_future_days=job.schedule.max_future_days
        )
        ticket.run_id = new_run_id(job.name, day, utcnow())  # known even if the run fails
        result = score_partition(
            job,
            day,
            platform=ticket.platform,
            spark=self.spark,
            model_version=body.model_version,
            run_id=ticket.run_id,
            airflow=AirflowIds(**body.airflow.model_dump()),
            progress=TicketProgress(ticket),
            input_version=body.input_version,
            validate_only=body.step == "validate",
            validated=body.validated,
            shadow=body.shadow,
        )
        return {
            "status": result.status,
            "exit_code": 0,
            "error": None,
            "run_id": result.run_id,
            "result": result.to_dict(),
        }

    def _range(self, ticket: Ticket) -> dict[str, Any]:
        from lakescore.run.range import range_days, range_exit_code, score_range

        body, job = ticket.body, ticket.job
        days = range_days(body.from_ds or "", body.to_ds or "", job=job)

        def on_partition(outcome: Any, progress: Any) -> None:
            ticket.emit("partition", outcome=outcome.to_dict(), progress=progress.line())
            if ticket.cancelled:  # stop between partitions
                raise RunCancelled(
                    f"range cancelled after {progress.done} of {progress.total} partitions: "
                    "the caller went away",
                    job=job.name,
                )

        outcomes = score_range(
            job,
            days,
            platform=ticket.platform,
            spark=self.spark,
            model_version=body.model_version,
            airflow=AirflowIds(**body.airflow.model_dump()),
            progress=TicketProgress(ticket),
            on_partition=on_partition,
            validate_only=body.step == "validate",
            shadow=body.shadow,
        )
        failed = [o for o in outcomes if o.error is not None]
        error = None
        if failed:
            error = (
                f"job {job.name!r}: {len(failed)} of {len(outcomes)} partitions failed "
                f"({', '.join(str(o.ds) for o in failed)}); first: {_one_line(failed[0].error)}"
            )
        return {
            "status": "failed" if failed else "succeeded",
            "exit_code": range_exit_code(outcomes),
            "error": error,
            "run_id": None,
            "partitions": [o.to_dict() for o in outcomes],
        }


def _one_line(err: BaseException | None) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class RunStream(StreamingResponse):
    """A run's NDJSON stream; when it ends for any reason (done, or the caller went away),
    ``on_close`` runs (it cancels the run unless it already finished)."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type=MEDIA_TYPE)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except (ClientDisconnect, OSError):
            pass  # on_close cancels the run
        finally:
            self._on_close()


def create_app(driver: WarmDriver, token: str | None) -> FastAPI:
    """The HTTP API of ``driver``; ``POST /run`` needs ``Authorization: Bearer <token>``
    when a token is set (``/health`` tells nothing secret and stays open for probes)."""
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="lakescore driver", docs_url=None, redoc_url=None, openapi_url=None)
    heartbeat_s = driver.platform.driver.heartbeat_s

    def authorised(request: Request) -> None:  # (annotations resolve in this module's globals)
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return driver.health()

    @app.post("/run", dependencies=[Depends(authorised)], response_model=None)
    async def run(body: RunBody) -> Any:
        try:
            platform, job = await run_in_threadpool(driver.admit, body)
        except Refused as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        except LakescoreError as exc:  # a broken job config: the run's answer, as spark-submit's
            line = event_line(
                "result", status="failed", exit_code=exc.exit_code, error=str(exc), run_id=None
            )
            return StreamingResponse(iter([line]), media_type=MEDIA_TYPE)
        ticket = Ticket(body, platform, job, heartbeat_s)
        try:
            driver.submit(ticket)
        except Refused as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        return RunStream(ticket.lines(driver.ahead_of), on_close=lambda: driver.cancel(ticket))

    return app


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the warm-up (a taken port fails in a second, not
    after it); callers see "connection refused" until the driver serves."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BadInputError(
            f"cannot listen on {host}:{port} ({exc.strerror}): is a driver already running? "
            "pick another port with --port (and LAKESCORE_DRIVER_URL for its callers)",
            key="driver.port",
        ) from None
    return sock


def serve(
    conf_dir: str | None = None,
    *,
    profile: str | None = None,
    host: str | None = None,
    port: int | None = None,
    announce: Callable[[str], None] = print,
) -> int:
    """Run the driver until SIGTERM / Ctrl-C: bind, warm up, serve, then stop Spark."""
    import uvicorn

    if not log.handlers:  # one line per run in the driver's own log
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s lakescore driver: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    platform = load_platform(conf_dir)
    spec = platform.driver
    host, port = host or spec.host, port or spec.port
    token = spec.token()
    if token is None and not _is_loopback(host):
        raise BadInputError(
            f"the driver would listen on {host} without a token: set $LAKESCORE_DRIVER_TOKEN "
            "(for it and its callers), or listen on 127.0.0.1",
            key="driver.host",
        )
    sock = _bind(host, port)
    # uvicorn re-raises the SIGTERM it handled once it has drained: with this handler that
    # ends here as SystemExit, so the Spark session is still stopped below.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    driver = WarmDriver(platform, profile)
    announce(f"lakescore driver: warming up (profile {driver.profile}, conf {platform.conf_dir})")
    try:
        driver.warm()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(driver, token),
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=5,
            )
        )
        warm = ", ".join(f"{k} {v:.1f}s" for k, v in driver.warm_seconds.items())
        announce(
            f"lakescore driver ready on http://{host}:{port} (Spark app {driver.app_id}, "
            f"{'token required' if token else 'no token'}; warm-up: {warm})"
        )
        server.run(sockets=[sock])
    finally:
        driver.close()
        sock.close()
    return 0
