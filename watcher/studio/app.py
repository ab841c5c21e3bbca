"""The routes of ``facedrop serve``. GET only reads; every change is a POST with a CSRF value.

Reads go through ``watcher.status.config_status`` (as ``facedrop status --json``) and the
outbox's own files; changes through ``watcher.actions`` and ``watcher.submit`` (as the CLI verbs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.errors import FacedropError, InputError
from pipeline.lipsync.registry import ENGINE_NAMES
from watcher.actions import cancel_job, delete_result, retry_job
from watcher.config import Config
from watcher.jobfolder import JOB_KEYS
from watcher.outbox import read_quality, read_status
from watcher.status import config_status
from watcher.studio import render
from watcher.studio.auth import SESSION_COOKIE, Guard
from watcher.studio.files import OutsideError, folder_inside, resolve_inside
from watcher.studio.uploads import MOTIONS, TooLargeError, UploadLimits, submit_form

Handler = Callable[[Request], Awaitable[Response]]
TEXT_FILES = ("error.txt", "timing.log")
DONE = {"cancel": "cancelling {} (it stops at its next chunk)",
        "retry": "submitted {} again: it is in the inbox",
        "delete": "deleted the outbox folder {}"}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")  # a page on loopback answers no other Host:
# a site that points its own name at 127.0.0.1 (DNS rebinding) cannot read it
FORM_LIMIT = 64 * 1024  # the body of a button's form (cancel, retry, delete, login)
TEXT_LIMIT = 256 * 1024  # a timing log or error text larger than this is cut for the page
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self'; media-src 'self'; frame-ancestors 'none'; "
     b"form-action 'self'; base-uri 'none'"),
]


class _SecurityHeaders:
    """Adds the headers above to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)
        await self.app(scope, receive, add if scope["type"] == "http" else send)


class Studio:
    """The page's state: the config, the access guard and the upload limits."""

    def __init__(self, config: Config, guard: Guard, limits: UploadLimits | None = None) -> None:
        self.config = config
        self.guard = guard
        self.limits = limits or UploadLimits()

    # ---- access ----------------------------------------------------------------------------
    def _allowed(self, request: Request) -> bool:
        return self.guard.has_session(request.cookies.get(SESSION_COOKIE))

    def reads(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if not self._allowed(request):
                if request.url.path.startswith(("/api/", "/files/", "/status.json")):
                    return JSONResponse({"error": "the studio token is needed"}, 401)
                return RedirectResponse("/login", 303)
            return await handler(request)
        return guarded

    def writes(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if not self._allowed(request):
                return self._page("Not signed in", render.message(
                    "This page needs the studio token first.", error=True), 401)
            if not self._same_origin(request):
                return PlainTextResponse("cross-site request refused", 403)
            # The length first: nothing is read if too big (a button's form is a few bytes).
            limit = self.limits.max_request_bytes if request.url.path == "/submit" else FORM_LIMIT
            try:
                self.limits.check_request(request.headers.get("content-length"), limit)
            except TooLargeError as err:
                return await self.index(request, render.message(err.user_message(),
                                                                error=True), 413)
            form = await request.form(max_files=4, max_fields=20, max_part_size=64 * 1024)
            try:
                if not self.guard.csrf_ok(_text(form.get("csrf"))):
                    return PlainTextResponse("the form is out of date: reload the page", 403)
                request.state.form = form
                return await handler(request)
            finally:
                await form.close()  # the spooled uploads: their bytes are in the inbox now
        return guarded

    def guard_length(self, request: Request) -> None:
        """A small form (login) must say its length and keep under ``FORM_LIMIT``."""
        self.limits.check_request(request.headers.get("content-length"), FORM_LIMIT)

    @staticmethod
    def _same_origin(request: Request) -> bool:
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin:
            return True  # no header: not a browser's cross-site form (those send Origin)
        return urlsplit(origin).netloc == request.headers.get("host", "")

    # ---- pages -----------------------------------------------------------------------------
    def _page(self, title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(render.page(title, body, lan=self.guard.lan), status)

    async def _report(self, before: int | None, inbox_offset: int) -> dict[str, Any]:
        report = await run_in_threadpool(
            config_status, self.config, render.PAGE_SIZE, before=before,
            inbox_offset=inbox_offset, inbox_limit=render.INBOX_PAGE)
        jobs = report.get("jobs") or {}
        outbox = self.config.paths.outbox
        for job in jobs.get("finished", []):  # two stats per shown card, never per past job
            job["present"] = (outbox / job["outbox"]).is_dir()  # not deleted since
            job["poster"] = (outbox / job["outbox"] / "poster.jpg").is_file()
        return report

    async def _live_html(self, request: Request) -> str:
        before, inbox_offset = _page(request)
        report = await self._report(before, inbox_offset)
        return render.live(report, self.guard.csrf(), before=before, inbox_offset=inbox_offset)

    async def index(self, request: Request, note: str = "", status: int = 200) -> Response:
        engines = list(ENGINE_NAMES)
        motions = MOTIONS if "motion" in JOB_KEYS else ()
        body = (f'<h1 class="sr">facedrop studio</h1>{note}<div class="layout">'
                f'<div id="live" data-src="/live" aria-live="polite">'
                f'{await self._live_html(request)}</div>'
                f'<aside>{render.submit_form(self.guard.csrf(), engines, motions)}</aside>'
                '</div>')
        return self._page("facedrop studio", body, status)

    async def live(self, request: Request) -> Response:
        return HTMLResponse(await self._live_html(request))

    async def api_status(self, request: Request) -> Response:
        return JSONResponse(await self._report(*_page(request)))

    def _result_folder(self, request: Request) -> Path:
        return folder_inside(self.config.paths.outbox, request.path_params["name"])

    async def result(self, request: Request) -> Response:
        try:
            folder = self._result_folder(request)
        except (OutsideError, FileNotFoundError):
            return self._page("Not found", render.message("No such result.", error=True), 404)
        status = read_status(folder) or {}
        files = await run_in_threadpool(_listing, folder)
        texts = {n: _head(folder / n) for n in TEXT_FILES if n in files}
        quality = read_quality(folder) if status.get("state") == "done" else None
        body = render.detail(folder.name, status, files, quality, texts, self.guard.csrf())
        return self._page(f"{folder.name} · facedrop studio", body)

    async def result_live(self, request: Request) -> Response:
        try:
            folder = self._result_folder(request)
        except (OutsideError, FileNotFoundError):
            return HTMLResponse(render.message("This result is gone.", error=True), 404)
        return HTMLResponse(render.detail_live(folder.name, read_status(folder) or {},
                                               self.guard.csrf()))

    async def confirm_delete(self, request: Request) -> Response:
        try:
            folder = self._result_folder(request)
        except (OutsideError, FileNotFoundError):
            return self._page("Not found", render.message("No such result.", error=True), 404)
        return self._page("Delete?", render.confirm_delete(folder.name, self.guard.csrf()))

    async def file(self, request: Request) -> Response:
        try:
            folder = self._result_folder(request)
            path = resolve_inside(folder, request.path_params["path"])
        except OutsideError:
            return PlainTextResponse("refused: that path is not inside the outbox", 403)
        except FileNotFoundError:
            return PlainTextResponse("not found", 404)
        return FileResponse(path)  # answers Range requests: the video seeks

    # ---- actions ---------------------------------------------------------------------------
    async def _act(self, request: Request, action: Callable[..., Any], did: str) -> Response:
        job = _text(request.state.form.get("job"))
        try:
            await run_in_threadpool(action, self.config, job)
        except FacedropError as err:
            return await self.index(request, render.message(err.user_message(), error=True), 400)
        # Post/redirect/get: a reload does not repeat the action. The note is one of DONE's
        # sentences (never text taken from the address).
        return RedirectResponse(f"/?{urlencode({'did': did, 'job': job})}", 303)

    async def cancel(self, request: Request) -> Response:
        return await self._act(request, cancel_job, "cancel")

    async def retry(self, request: Request) -> Response:
        return await self._act(request, retry_job, "retry")

    async def delete(self, request: Request) -> Response:
        if _text(request.state.form.get("confirm")) != "yes":
            return self._page("Delete?", render.confirm_delete(
                _text(request.state.form.get("job")), self.guard.csrf()), 400)
        return await self._act(request, delete_result, "delete")

    async def submit(self, request: Request) -> Response:
        try:
            entry = await run_in_threadpool(submit_form, self.config, request.state.form,
                                            self.limits)
        except TooLargeError as err:
            return await self.index(request, render.message(err.user_message(), error=True), 413)
        except InputError as err:
            return await self.index(request, render.message(err.user_message(), error=True), 400)
        return await self.index(request, render.message(
            f"Submitted {entry.name}: it is in the inbox and will be claimed shortly.",
            error=False))

    # ---- login (LAN mode) --------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        return self._page("Token needed", render.login(self.guard.csrf()))

    async def login(self, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        wait = self.guard.wait_left(client)
        if wait > 0:
            return self._page("Wait", render.login(
                self.guard.csrf(), f"Too many wrong tokens: wait {wait:.0f} s and try again."),
                429)
        try:
            self.guard_length(request)
        except TooLargeError:
            return PlainTextResponse("the form is too large", 413)
        form = await request.form(max_files=0, max_fields=5, max_part_size=4096)
        await form.close()
        if not self.guard.csrf_ok(_text(form.get("csrf"))) or not self.guard.lan:
            return PlainTextResponse("the form is out of date: reload the page", 403)
        if not self.guard.check_token(client, _text(form.get("token"))):
            return self._page("Token needed", render.login(
                self.guard.csrf(), "That is not the token."), 401)
        response = RedirectResponse("/", 303)
        response.set_cookie(SESSION_COOKIE, self.guard.session_value(), max_age=30 * 86400,
                            httponly=True, samesite="strict", path="/")
        return response

    async def done_note(self, request: Request) -> Response:
        did = DONE.get(request.query_params.get("did", ""))
        job = request.query_params.get("job", "")
        return await self.index(request, render.message(did.format(job), error=False)
                                if did and job else "")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _page(request: Request) -> tuple[int | None, int]:
    """``before`` (the results page: ids below it) and ``inbox`` (the inbox page's offset)."""
    def number(key: str) -> int | None:
        value = request.query_params.get(key, "")
        return min(int(value), 10**12) if value.isdigit() else None
    return number("before"), number("inbox") or 0


def _listing(folder: Path) -> list[str]:
    """The downloadable files of a result: regular files, inputs under ``input/``."""
    names = sorted(p.name for p in folder.iterdir()
                   if not p.name.startswith(".") and p.is_file() and not p.is_symlink())
    inputs = folder / "input"
    if inputs.is_dir() and not inputs.is_symlink():
        names += sorted(f"input/{p.name}" for p in inputs.iterdir()
                        if not p.name.startswith(".") and p.is_file() and not p.is_symlink())
    return names


def _head(path: Path) -> str:
    with open(path, "rb") as fh:
        data = fh.read(TEXT_LIMIT)
    return data.decode("utf-8", errors="replace")


def build_app(config: Config, guard: Guard, limits: UploadLimits | None = None) -> ASGIApp:
    """The ASGI app of ``facedrop serve``; on loopback it answers only loopback Host names."""
    s = Studio(config, guard, limits)
    static = str(package_files("watcher.studio") / "static")
    routes = [
        Route("/", s.reads(s.done_note)),
        Route("/live", s.reads(s.live)),
        Route("/api/status", s.reads(s.api_status)),
        Route("/status.json", s.reads(s.api_status)),
        Route("/result/{name}", s.reads(s.result)),
        Route("/result/{name}/live", s.reads(s.result_live)),
        Route("/result/{name}/delete", s.reads(s.confirm_delete)),
        Route("/files/{name}/{path:path}", s.reads(s.file)),
        Route("/jobs/cancel", s.writes(s.cancel), methods=["POST"]),
        Route("/results/retry", s.writes(s.retry), methods=["POST"]),
        Route("/results/delete", s.writes(s.delete), methods=["POST"]),
        Route("/submit", s.writes(s.submit), methods=["POST"]),
        Route("/login", s.login_page, methods=["GET"]),
        Route("/login", s.login, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]
    middleware = [] if guard.lan else [
        Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS))]
    return _SecurityHeaders(Starlette(routes=routes, middleware=middleware))

