"""HTML for the studio page, from the plain data ``watcher.status`` reports. No templates engine:
every value passes through ``e`` (html.escape) on its way in."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

PAGE_SIZE = 12
INBOX_PAGE = 50


def e(value: object) -> str:
    return escape(str(value), quote=True)


def url_part(name: str) -> str:
    return quote(name, safe="")


def page(title: str, body: str, *, lan: bool = False) -> str:
    badge = '<span class="badge">LAN</span>' if lan else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<link rel="stylesheet" href="/static/studio.css">
<script src="/static/studio.js" defer></script>
</head><body>
<a class="skip" href="#main">Skip to content</a>
<header><a class="brand" href="/">facedrop studio</a>{badge}</header>
<main id="main">{body}</main>
</body></html>"""


def csrf_field(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(csrf)}">'


def action_button(path: str, job: str, label: str, csrf: str, *, danger: bool = False,
                  key: str = "") -> str:
    cls = ' class="danger"' if danger else ""
    return (f'<form method="post" action="{e(path)}" class="inline">{csrf_field(csrf)}'
            f'<input type="hidden" name="job" value="{e(job)}">'
            f'<button type="submit"{cls} data-key="{e(key or path + job)}">{e(label)}</button>'
            f'</form>')


def message(text: str, *, error: bool) -> str:
    role, cls = ("alert", "error") if error else ("status", "ok")
    lines = "".join(f"<span>{e(line)}</span>" for line in text.splitlines() if line.strip())
    return f'<div class="message {cls}" role="{role}">{lines}</div>'


# ---- the live part of the index -----------------------------------------------------------
def live(report: dict[str, Any], csrf: str, *, before: int | None, inbox_offset: int) -> str:
    jobs = report.get("jobs") or {"running": [], "queued": [], "finished": [], "more": []}
    parts = [
        _daemon(report),
        _running(jobs["running"], csrf),
        _queue(jobs["queued"], jobs["running"], jobs["finished"], csrf),
        _fleet(report.get("fleet")),
        _inbox(report["inbox"], report.get("inbox_total", len(report["inbox"])),
               inbox_offset, before, int(report.get("inbox_unlisted", 0))),
        _results(jobs["finished"], before, jobs.get("more") or [], inbox_offset),
    ]
    return "\n".join(p for p in parts if p)


def _daemon(report: dict[str, Any]) -> str:
    daemon = report["daemon"]
    state = (f'<p class="daemon on">Daemon running (pid {e(daemon["pid"])})</p>'
             if daemon["running"] else
             '<p class="daemon off" role="alert">The daemon is not running: nothing is claimed '
             'from the inbox. Fix: start it with <code>facedrop watch</code> (or '
             '<code>facedrop service install</code>).</p>')
    paused = "".join(
        f'<div class="paused" role="alert"><strong>Paused</strong> ({e(f["kind"])}): '
        f'{e(f["reason"])}' + (f'<br><strong>Fix:</strong> {e(f["fix"])}' if f.get("fix") else "")
        + "</div>"
        for f in report["paused"]
    )
    return f'<section aria-label="Daemon">{state}{paused}</section>'


def _running(running: Sequence[dict[str, Any]], csrf: str) -> str:
    if not running:
        return ('<section aria-labelledby="h-run"><h2 id="h-run">Running</h2>'
                '<p>Nothing.</p></section>')
    cards = []
    for job in running:
        pct = round(100 * float(job["progress"] or 0))
        cards.append(
            f'<article class="card running"><h3>{_result_link(job)}</h3>'
            f'<p>Stage <strong>{e(job["stage"] or "starting")}</strong>, attempt '
            f'{e(job["attempts"])}, {_duration(job["seconds"])} so far</p>'
            f'<progress max="100" value="{pct}" aria-label="progress of {e(job["name"])}">'
            f'{pct}%</progress> <span>{pct}%</span> '
            + action_button("/jobs/cancel", job["outbox"], "Cancel", csrf, danger=True,
                            key=f"cancel-{job['outbox']}")
            + "</article>")
    return (f'<section aria-labelledby="h-run"><h2 id="h-run">Running</h2>{"".join(cards)}'
            f'</section>')


def _typical_seconds(finished: Iterable[dict[str, Any]]) -> float | None:
    done = sorted(float(j["seconds"]) for j in finished if j["state"] == "done")
    return done[len(done) // 2] if done else None


def _queue(queued: Sequence[dict[str, Any]], running: Sequence[dict[str, Any]],
           finished: Sequence[dict[str, Any]], csrf: str) -> str:
    if not queued:
        return '<section aria-labelledby="h-q"><h2 id="h-q">Queue</h2><p>Empty.</p></section>'
    typical = _typical_seconds(finished)
    left = sum(max(0.0, typical - float(j["seconds"])) for j in running) if typical else 0.0
    rows = []
    for pos, job in enumerate(queued, 1):
        estimate = "—"
        if typical is not None:
            wait = left + (pos - 1) * typical
            soon = "next" if pos == 1 else "soon"
            estimate = soon if wait < 5 else "about " + _duration(wait)
        rows.append(
            f'<tr><td>{pos}</td><td>{_result_link(job)}</td>'
            f'<td>{"retry, attempt " + e(job["attempts"] + 1) if job["attempts"] else "new"}</td>'
            f'<td>{e(estimate)}</td><td>'
            + action_button("/jobs/cancel", job["outbox"], "Cancel", csrf, danger=True,
                            key=f"cancel-{job['outbox']}")
            + "</td></tr>")
    return (f'<section aria-labelledby="h-q"><h2 id="h-q">Queue ({len(queued)})</h2>'
            '<table><thead><tr><th>#</th><th>Job</th><th>Attempt</th><th>Starts in</th>'
            f'<th><span class="sr">Actions</span></th></tr></thead><tbody>{"".join(rows)}'
            '</tbody></table></section>')


def _fleet(fleet: dict[str, Any] | None) -> str:
    if fleet is None:
        return ""
    if fleet.get("error"):
        body = f'<p class="paused" role="alert">{e(fleet["error"])}</p>'
    elif not fleet["workers"]:
        body = "<p>No worker is running. Start <code>facedrop worker</code> on a GPU machine.</p>"
    else:
        now = time.time()
        body = '<div class="workers">' + "".join(
            f'<article class="card worker"><h3>{e(c["id"])}</h3>'
            f'<p>{e(c.get("host", ""))} · {e(c.get("device", ""))}</p>'
            f'<p>{e(c.get("state", ""))}{" (" + e(c["reason"]) + ")" if c.get("reason") else ""}'
            f'</p>'
            + (f'<p>Job {e(c["job"])}: {e(c.get("stage", ""))} '
               f'{100 * float(c.get("progress") or 0):.0f}%</p>' if c.get("job") else "")
            + f'<p class="dim">heartbeat {now - float(c.get("heartbeat") or now):.0f} s ago</p>'
            '</article>' for c in fleet["workers"]) + "</div>"
    return f'<section aria-labelledby="h-fleet"><h2 id="h-fleet">Workers</h2>{body}</section>'


def _inbox(entries: Sequence[dict[str, Any]], total: int, inbox_offset: int,
           before: int | None, unlisted: int = 0) -> str:
    if not total:
        return ('<section aria-labelledby="h-in"><h2 id="h-in">Inbox</h2>'
                '<p>No entries waiting.</p></section>')
    rows = "".join(
        f'<tr><td>{e(x["name"])}</td><td><span class="verdict v-{e(x["verdict"])}">'
        f'{e(x["verdict"])}</span></td><td>{e(x.get("reason", ""))}</td></tr>'
        for x in entries)
    keep = {} if before is None else {"before": before}
    links = []
    if inbox_offset > 0:
        links.append(_link({**keep, "inbox": max(0, inbox_offset - INBOX_PAGE)}, "prev",
                           "Earlier inbox entries"))
    if inbox_offset + len(entries) < total - unlisted:
        links.append(_link({**keep, "inbox": inbox_offset + INBOX_PAGE}, "next",
                           "Later inbox entries"))
    nav = _nav(links, "inbox pages")
    if unlisted:
        nav += f'<p class="dim">and {unlisted} more entries the daemon counts but does not list</p>'

    return (f'<section aria-labelledby="h-in"><h2 id="h-in">Inbox ({total})</h2>'
            '<table><thead><tr><th>Entry</th><th>Verdict</th><th>Why</th></tr></thead>'
            f'<tbody>{rows}</tbody></table>{nav}</section>')


def _results(finished: Sequence[dict[str, Any]], before: int | None,
             more: Sequence[dict[str, Any]], inbox_offset: int) -> str:
    if not finished and before is None:
        return ('<section aria-labelledby="h-res"><h2 id="h-res">Results</h2>'
                '<p>No finished jobs yet.</p></section>')
    cards = "".join(_result_card(j) for j in finished)
    keep = {"inbox": inbox_offset} if inbox_offset else {}
    links = []
    if before is not None:
        links.append(_link(keep, "first", "Newest results"))
    if more:
        links.append(_link({**keep, "before": more[0]["before"]}, "next", "Older results"))
    nav = _nav(links, "results pages")
    return (f'<section aria-labelledby="h-res"><h2 id="h-res">Results</h2>'
            f'<div class="results">{cards}</div>{nav}</section>')


def _link(query: dict[str, int], rel: str, text: str) -> str:
    return f'<a href="/?{e(urlencode(query))}" rel="{rel}">{e(text)}</a>'


def _nav(links: Sequence[str], label: str) -> str:
    return f'<nav class="pager" aria-label="{e(label)}">{" ".join(links)}</nav>' if links else ""


def verdict_of(job: dict[str, Any]) -> tuple[str, list[str]]:
    """(verdict word, reasons) of a finished job."""
    if job["state"] == "failed":
        return "failed", [job.get("error", "")] if job.get("error") else []
    quality = job.get("quality") or {}
    verdict = str(quality.get("verdict") or "not scored")
    reasons = [str(r) for r in quality.get("reasons") or quality.get("notes") or []]
    return verdict, reasons


def _result_card(job: dict[str, Any]) -> str:
    if not job.get("present", True):
        return (f'<article class="card result gone"><div class="noposter" role="img" '
                f'aria-label="deleted">deleted</div><div><h3>{e(job["name"])}</h3>'
                f'<p class="dim">the outbox folder {e(job["outbox"])} was deleted</p></div>'
                '</article>')
    verdict, reasons = verdict_of(job)
    folder = url_part(job["outbox"])
    poster = (f'<img src="/files/{folder}/poster.jpg" alt="Poster frame of {e(job["name"])}" '
              f'loading="lazy" width="160" height="160">' if job.get("poster") else
              f'<div class="noposter" role="img" aria-label="no poster for {e(job["name"])}">'
              f'{"failed" if job["state"] == "failed" else "no poster"}</div>')
    why = "".join(f"<li>{e(r)}</li>" for r in reasons)
    when = ""
    if job.get("finished_at"):
        when = time.strftime("%d %b %H:%M", time.localtime(float(job["finished_at"])))
    return (f'<article class="card result">{poster}<div><h3>{_result_link(job)}</h3>'
            f'<p><span class="verdict v-{e(verdict.replace(" ", "-"))}">{e(verdict)}</span> '
            f'<span class="dim">{e(when)} · {_duration(job["seconds"])}</span></p>'
            f'{"<ul class=reasons>" + why + "</ul>" if why else ""}</div></article>')


def _result_link(job: dict[str, Any]) -> str:
    return f'<a href="/result/{url_part(job["outbox"])}">{e(job["name"])}</a>'


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---- the submission form ---------------------------------------------------------------------
def submit_form(csrf: str, engines: Sequence[str], motions: Sequence[str]) -> str:
    engine_options = '<option value="">as configured</option>' + "".join(
        f'<option value="{e(n)}">{e(n)}</option>' for n in engines) + \
        '<option value="off">off (no lip sync)</option>'
    motion = ""
    if motions:
        motion = ('<label>Motion <select name="motion"><option value="">as configured</option>'
                  + "".join(f'<option value="{e(m)}">{e(m)}</option>' for m in motions)
                  + "</select></label>")
    return f"""<section aria-labelledby="h-sub" id="submit"><h2 id="h-sub">Submit a job</h2>
<form method="post" action="/submit" enctype="multipart/form-data" class="submit">
{csrf_field(csrf)}
<div class="drops">
<label class="drop">Photo<input type="file" name="photo" accept="image/*,.heic"></label>
<label class="drop">Voice<input type="file" name="voice" accept="audio/*"></label>
<label class="drop">or a job zip<input type="file" name="zip" accept=".zip,application/zip">
</label>
<label class="drop">Driving clip (optional)<input type="file" name="driving"
 accept="video/mp4,video/quicktime,.mp4,.mov"></label>
</div>
<div class="settings">
<label>Job name <input type="text" name="name" placeholder="from the voice file"></label>
<label>Lip sync <select name="engine">{engine_options}</select></label>
<label>Enhance <select name="enhance"><option value="">as configured</option>
<option value="true">on</option><option value="false">off</option></select></label>
{motion}
</div>
<button type="submit">Submit</button>
</form></section>"""


# ---- one result ------------------------------------------------------------------------------
def detail_live(name: str, status: dict[str, Any], csrf: str) -> str:
    state = str(status.get("state", "unknown"))
    bits = [f'<p>State <strong class="state s-{e(state)}">{e(state)}</strong>']
    if state == "running":
        pct = round(100 * float(status.get("progress") or 0))
        bits.append(f', stage <strong>{e(status.get("stage", ""))}</strong> '
                    f'<progress max="100" value="{pct}" aria-label="progress">{pct}%</progress> '
                    f'{pct}%')
    bits.append("</p>")
    if state in ("queued", "running"):
        bits.append(action_button("/jobs/cancel", name, "Cancel", csrf, danger=True,
                                  key="cancel"))
    if state in ("done", "failed"):
        bits.append('<span data-final="1"></span>')
    return "".join(bits)


def detail(name: str, status: dict[str, Any], files: Sequence[str], quality: dict[str, Any] | None,
           texts: dict[str, str], csrf: str) -> str:
    folder = url_part(name)
    state = str(status.get("state", ""))
    final = state in ("done", "failed")
    head = (f'<p><a href="/">← All jobs</a></p><h1>{e(status.get("job", name))}</h1>'
            f'<div id="live" data-src="/result/{folder}/live" '
            f'data-final="{1 if final else 0}">{detail_live(name, status, csrf)}</div>')
    media: list[str] = []
    info: list[str] = []
    actions = []
    if state == "failed":
        actions.append(action_button("/results/retry", name, "Retry", csrf, key="retry"))
    if final:
        actions.append(f'<a class="button danger" href="/result/{folder}/delete">Delete…</a>')
    if actions:
        info.append(f'<div class="actions" aria-label="Actions">{"".join(actions)}</div>')
    video = status.get("video")
    if video and video in files:
        src = f"/files/{folder}/{url_part(str(video))}"
        poster = f' poster="/files/{folder}/poster.jpg"' if "poster.jpg" in files else ""
        media.append(f'<video id="video" controls preload="metadata" src="{src}"{poster} '
                     f'aria-label="the video of {e(name)}"></video>')
    if quality:
        reasons = quality.get("reasons") or quality.get("notes") or []
        info.append(f'<h2>Verdict: <span class="verdict v-{e(str(quality.get("verdict", "")))}">'
                    f'{e(quality.get("verdict", ""))}</span></h2>'
                    + "".join(f"<p>{e(r)}</p>" for r in reasons))
    pictures = [("preview.jpg", f"Preview sheet of {name}: frames with the mouth enlarged"),
                ("syncnet.png", f"SyncNet confidence over time for {name}")]
    for file, alt in pictures:
        if file in files:
            media.append(f'<figure><img src="/files/{folder}/{file}" alt="{e(alt)}">'
                        f'<figcaption>{e(file)}</figcaption></figure>')
    for file, title in (("error.txt", "What went wrong"), ("timing.log", "Timing")):
        if file in texts:
            cls = ' class="wrap"' if file == "error.txt" else ""
            info.append(f'<h2>{title}</h2><pre{cls}>{e(texts[file])}</pre>')
    links = "".join(f'<li><a href="/files/{folder}/{"/".join(url_part(p) for p in f.split("/"))}"'
                    f' download>{e(f)}</a></li>' for f in files)
    info.append(f'<h2>Downloads</h2><ul class="downloads">{links}</ul>')
    if not media:  # a failed job: its text gets the whole width
        return head + f'<div>{"".join(info)}</div>'
    return (head + f'<div class="detail"><div>{"".join(media)}</div>'
            f'<div>{"".join(info)}</div></div>')


def confirm_delete(name: str, csrf: str) -> str:
    return (f'<h1>Delete {e(name)}?</h1><p>This removes the outbox folder <code>{e(name)}</code>'
            ' with its video, its report and the submitted files. It cannot be undone.</p>'
            f'<form method="post" action="/results/delete">{csrf_field(csrf)}'
            f'<input type="hidden" name="job" value="{e(name)}">'
            '<input type="hidden" name="confirm" value="yes">'
            '<button type="submit" class="danger" autofocus>Delete it</button> '
            f'<a href="/result/{url_part(name)}">Keep it</a></form>')


def login(csrf: str, note: str = "") -> str:
    return ('<h1>This studio page needs its token</h1>'
            '<p>The token was shown once by <code>facedrop serve</code> in LAN mode; it is kept '
            'in the state folder, in <code>studio-token</code>.</p>'
            + (message(note, error=True) if note else "")
            + f'<form method="post" action="/login">{csrf_field(csrf)}'
            '<label>Token <input type="password" name="token" autocomplete="current-password" '
            'required autofocus></label> <button type="submit">Open</button></form>')
