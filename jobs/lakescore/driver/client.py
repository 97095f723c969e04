"""The caller's side of the warm driver: is one there, run a request on it, follow its
progress. Imports httpx (Airflow's own HTTP client) and pydantic only, never Spark.

Example::

    client = DriverClient.for_platform(platform)           # None: no driver configured
    try:
        client.health()
        outcome = client.run(RunBody(job="churn", ds="2026-11-20"), on_event=print)
    except DriverUnavailable as exc:                         # not there, or refused (409)
        ...  # fall back to spark-submit; str(exc) says why
    outcome.exit_code                                        # 0 ok, 1 failure, 2 bad input
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakescore.driver.protocol import RunBody

if TYPE_CHECKING:
    import httpx

    from lakescore.config import PlatformConfig


class DriverUnavailable(Exception):
    """No driver answered, or it refused the request before running it (another conf folder
    or Spark profile, a wrong token): the caller falls back; ``str()`` says why."""


class DriverLost(Exception):
    """The driver stopped answering in the middle of a run: a failure worth a retry (the
    attempt's lineage row says how far it got; a driver that died leaves a marker the next
    run records as abandoned)."""


@dataclass(frozen=True)
class DriverOutcome:
    """The ``result`` line of a run."""

    status: str
    exit_code: int
    error: str | None = None
    run_id: str | None = None
    result: dict[str, Any] | None = None
    partitions: list[dict[str, Any]] = field(default_factory=list)


class DriverClient:
    """Talks to one driver at ``url`` (``http://host:port``)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        health_timeout_s: float = 3.0,
        heartbeat_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.health_timeout_s = health_timeout_s
        # The driver sends a line at least every heartbeat_s: a longer silence means it is gone.
        self.read_timeout_s = heartbeat_s * 3 + 10

    @classmethod
    def for_platform(cls, platform: PlatformConfig) -> DriverClient | None:
        """The driver the platform config (or ``$LAKESCORE_DRIVER_URL``) names; None when
        it is turned off."""
        spec = platform.driver
        url = spec.url()
        if url is None:
            return None
        return cls(
            url,
            token=spec.token(),
            health_timeout_s=spec.health_timeout_s,
            heartbeat_s=spec.heartbeat_s,
        )

    def _client(self, read_timeout: float) -> httpx.Client:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=self.health_timeout_s),
            trust_env=False,  # an internal service: never through an HTTP proxy
        )

    def health(self) -> dict[str, Any]:
        """The driver's ``/health``; :class:`DriverUnavailable` when it does not answer."""
        import httpx

        try:
            with self._client(self.health_timeout_s) as client:
                response = client.get("/health")
        except httpx.HTTPError as exc:
            raise DriverUnavailable(f"no driver at {self.url} ({_reason(exc)})") from None
        if response.status_code != 200:
            raise DriverUnavailable(f"driver at {self.url}: /health HTTP {response.status_code}")
        data = response.json()
        if data.get("status") != "ok":
            raise DriverUnavailable(f"driver at {self.url} is {data.get('status')}")
        return data

    def run(
        self, body: RunBody, on_event: Callable[[dict[str, Any]], None] | None = None
    ) -> DriverOutcome:
        """Run ``body`` and follow it to its result, calling ``on_event`` with every line.

        :class:`DriverUnavailable` when the run did not start (no answer, 401, 409): fall
        back. :class:`DriverLost` when the driver went away mid-run."""
        import httpx

        started = False
        payload = body.model_dump(mode="json", by_alias=True, exclude_none=True)
        try:
            with (
                self._client(self.read_timeout_s) as client,
                client.stream("POST", "/run", json=payload) as response,
            ):
                if response.status_code != 200:
                    response.read()
                    raise DriverUnavailable(
                        f"driver at {self.url} refused {body.what}: HTTP "
                        f"{response.status_code} {_detail(response)}"
                    )
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    started = True
                    if on_event is not None:
                        on_event(event)
                    if event.get("event") == "result":
                        return _outcome(event)
        except httpx.HTTPError as exc:
            if not started:
                raise DriverUnavailable(f"no driver at {self.url} ({_reason(exc)})") from None
            raise DriverLost(
                f"the driver at {self.url} stopped answering during {body.what} "
                f"({_reason(exc)}); the attempt's lineage row says how far it got"
            ) from None
        raise DriverLost(f"the driver at {self.url} closed the stream of {body.what} early")


def _outcome(event: dict[str, Any]) -> DriverOutcome:
    return DriverOutcome(
        status=event.get("status", "failed"),
        exit_code=int(event.get("exit_code", 1)),
        error=event.get("error"),
        run_id=event.get("run_id"),
        result=event.get("result"),
        partitions=event.get("partitions") or [],
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:200]
    return detail if isinstance(detail, str) else json.dumps(detail)[:300]


def describe_event(event: dict[str, Any]) -> str | None:
    """One log line for an event (None for events not worth a line)."""
    kind = event.get("event")
    if kind == "stage":
        return f"[{event['stage']}] {event.get('detail') or ''}".rstrip()
    if kind == "tasks":
        return f"[score] tasks {event['done']}/{event['total']}"
    if kind == "accepted":
        ahead = event.get("ahead") or 0
        return f"accepted by the driver (Spark app {event.get('app_id')}, {ahead} runs ahead)"
    if kind == "queued":
        return f"queued in the driver: {event.get('ahead')} runs ahead ({event['elapsed_s']}s)"
    if kind == "heartbeat":
        return None
    if kind == "partition":
        outcome = event["outcome"]
        what = (
            f"{outcome.get('rows', 0):,} rows in {outcome['seconds']:.1f}s"
            if outcome.get("error") is None
            else outcome["error"]
        )
        return f"partition {outcome['ds']} {outcome['status']}: {what} ({event['progress']})"
    if kind == "result":
        error = f": {event['error']}" if event.get("error") else ""
        return f"driver run {event.get('status')} (exit {event.get('exit_code')}){error}"
    return json.dumps(event)
