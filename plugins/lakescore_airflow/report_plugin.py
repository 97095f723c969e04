"""lakescore job reports inside the Airflow UI (an Airflow 3 plugin).

* A FastAPI app the API server mounts at ``/lakescore``:

  - ``GET /lakescore/reports``: the jobs (``conf/jobs/*.yaml``), each linked to its report;
  - ``GET /lakescore/reports/{job}``: the job's report (:func:`lakescore.reporting.report.render_job_report`,
    the page ``lakescore report`` writes), rendered from the lineage and metrics tables per
    request;
  - ``GET /lakescore/reports/{job}/files/{path}``: files under ``<reports_root>/<job>/`` (the
    validation reports the runs table links to).

* An external view: a "Scoring reports" entry in the UI's navigation that shows the index
  inside the Airflow UI (``/plugin/lakescore-reports``).

Every route is behind Airflow's own authentication: the dependencies come from
``airflow.api_fastapi.core_api.security`` (``get_user``: the ``Authorization: Bearer`` JWT, or
the ``_token`` cookie the UI's login sets; none is 401, an invalid one 403). A job's report and
files also need read access to the job's DAG ``score_<job>`` in the configured auth manager
(``requires_access_dag("GET")``), so whoever may see the DAG may see its report.

Every Airflow process imports the files in the plugins folder (scheduler, DAG processor,
workers), so importing this one only defines a few classes: FastAPI, Airflow's API modules and
the report code (pyarrow, deltalake) are imported on the API server's first request under
``/lakescore``.
"""

# No `from __future__ import annotations` here: FastAPI evaluates the route signatures'
# annotations at runtime, and they name objects imported inside create_app().

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/lakescore"
# The DAG of job J is score_J (plugins/lakescore_airflow/factory.py).
DAG_ID_PREFIX = "score_"
URL_ROUTE = "lakescore-reports"
NO_STORE = {"Cache-Control": "no-store"}

ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" '
    'stroke="#2563eb" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
    '<path d="M3 3v18h18"/><rect x="6" y="12" width="3" height="6" fill="#2563eb"/>'
    '<rect x="11" y="8" width="3" height="10" fill="#2563eb"/>'
    '<rect x="16" y="5" width="3" height="13" fill="#2563eb"/></svg>'
)


def create_app() -> Any:
    """The FastAPI app behind ``/lakescore`` (imports FastAPI, Airflow's API and lakescore).
    The routes are thin: authentication here, the pages in the functions below."""
    from airflow.api_fastapi.core_api.security import (
        GetUserDep,
        requires_access_dag,
        requires_authenticated,
    )
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import HTMLResponse, Response

    app = FastAPI(
        title="lakescore reports",
        description="Scoring job reports (lineage + score drift), behind Airflow's login.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def can_read_job_dag(request: Request, job: str, user: GetUserDep) -> None:
        """Airflow's DAG read check (403 if refused) on the DAG of ``job``."""
        requires_access_dag("GET", param_dag_id=f"{DAG_ID_PREFIX}{job}")(request, user)

    def prefix(request: Request) -> str:
        # root_path = the API's base path + this app's mount point (e.g. "/lakescore").
        return str(request.scope.get("root_path") or URL_PREFIX).rstrip("/")

    @app.get("/", include_in_schema=False, dependencies=[Depends(requires_authenticated())])
    def root(request: Request) -> Response:
        return Response(status_code=307, headers={"Location": f"{prefix(request)}/reports"})

    @app.get(
        "/reports",
        response_class=HTMLResponse,
        dependencies=[Depends(requires_authenticated())],
    )
    def index(request: Request) -> Response:
        return index_page(prefix(request))

    @app.get(
        "/reports/{job}",
        response_class=HTMLResponse,
        dependencies=[Depends(can_read_job_dag)],
    )
    def job_report(job: str, request: Request) -> Response:
        return job_report_page(job, prefix(request))

    @app.get("/reports/{job}/files/{path:path}", dependencies=[Depends(can_read_job_dag)])
    def job_file(job: str, path: str) -> Response:
        return report_file(job, path)

    @app.get("/static/icon.svg", dependencies=[Depends(requires_authenticated())])
    def icon() -> Response:
        return Response(ICON_SVG, media_type="image/svg+xml")

    return app


def error_page(status: int, title: str, message: str) -> Any:
    """A small HTML page with the error (never cached)."""
    from html import escape

    from fastapi.responses import HTMLResponse

    body = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title></head><body style='font-family:system-ui,sans-serif;"
        f"padding:32px'><h1 style='font-size:20px'>{escape(title)}</h1>"
        f"<p id='error'>{escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=NO_STORE)


def platform_or_error() -> Any:
    """The platform config, or the error page that says why it cannot be loaded."""
    from lakescore.orchestration import LakescoreError, load_platform

    try:
        return load_platform()
    except LakescoreError as exc:
        return error_page(500, "lakescore platform config is broken", str(exc))


def index_page(base: str) -> Any:
    """``GET /reports``: the jobs, each linked to its report under ``base``."""
    from urllib.parse import quote

    from fastapi.responses import HTMLResponse, Response

    from lakescore.orchestration import list_job_names, render_index

    platform = platform_or_error()
    if isinstance(platform, Response):
        return platform
    page = render_index(
        platform,
        list_job_names(platform.conf_dir),
        job_href=lambda job: f"{base}/reports/{quote(job)}",
    )
    return HTMLResponse(page, headers=NO_STORE)


def job_report_page(job: str, base: str) -> Any:
    """``GET /reports/{job}``: the job's report; its validation reports link to this app's
    files route, other local files are shown as text."""
    from pathlib import Path
    from urllib.parse import quote

    from fastapi.responses import HTMLResponse, Response

    from lakescore.orchestration import (
        BadInputError,
        ConfigError,
        LakescoreError,
        default_artifact_href,
        render_job_report,
    )

    platform = platform_or_error()
    if isinstance(platform, Response):
        return platform
    files_root = Path(platform.reports_root) / job

    def artifact_href(target: str) -> str | None:
        local = Path(target.removeprefix("file://"))
        if local.is_absolute():
            try:
                rel = local.resolve().relative_to(files_root.resolve())
            except ValueError:
                return None  # a local file this app does not serve: shown as text
            return f"{base}/reports/{quote(job)}/files/{quote(rel.as_posix())}"
        return default_artifact_href(target)

    try:
        page = render_job_report(
            platform, job, artifact_href=artifact_href, index_href=f"{base}/reports"
        )
    except ConfigError as exc:
        return error_page(500, f"job {job}: broken config", str(exc))
    except BadInputError as exc:
        return error_page(404, f"job {job}: not found", str(exc))
    except LakescoreError as exc:
        return error_page(500, f"job {job}: cannot render the report", str(exc))
    return HTMLResponse(page, headers=NO_STORE)


def report_file(job: str, path: str) -> Any:
    """``GET /reports/{job}/files/{path}``: a file under ``<reports_root>/<job>/``, nothing
    outside it."""
    from pathlib import Path

    from fastapi.responses import FileResponse, Response

    from lakescore.orchestration import JOB_NAME_PATTERN

    platform = platform_or_error()
    if isinstance(platform, Response):
        return platform
    if not JOB_NAME_PATTERN.fullmatch(job):
        return error_page(404, "not found", f"no job {job!r}")
    root = (Path(platform.reports_root) / job).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        return error_page(404, "not found", f"no file {path!r} in the reports of {job}")
    return FileResponse(target, headers=NO_STORE)


class LazyReportsApp:
    """An ASGI app that builds :func:`create_app` on its first request, so that importing the
    plugin (which every Airflow process does) imports neither FastAPI nor the report code."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = create_app()
        await self._app(scope, receive, send)


reports_app = LazyReportsApp()


class LakescoreReportsPlugin(AirflowPlugin):
    """Scoring job reports: a FastAPI app under /lakescore and a nav entry in the Airflow UI."""

    name = "lakescore_reports"
    fastapi_apps = [  # noqa: RUF012 - Airflow's plugin interface is class-level lists
        {"app": reports_app, "url_prefix": URL_PREFIX, "name": "lakescore reports"}
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "Scoring reports",
            # Relative to the UI's base URL (works when Airflow is served under a sub-path).
            "href": "lakescore/reports",
            "url_route": URL_ROUTE,  # the UI shows it in an iframe at /plugin/<url_route>
            "destination": "nav",
            "nav_top_level": True,
            "icon": "lakescore/static/icon.svg",
        }
    ]
