"""The owner's page as plain HTML, rendered from data (pure: no I/O, no clock).

``render(view)`` returns the whole page; ``render_main(view)`` only the part that changes, which
the page's script fetches every few seconds (``/?part=main``) and swaps in, so the page updates
live without any client-side templating. Every value from outside is escaped. Charts are
inline SVG drawn here: contribution per hour and the availability sessions the forecast uses.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

STYLE_PATH = "/static/page.css"
SCRIPT_PATH = "/static/page.js"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _when(t: float | None) -> str:
    return "-" if not t else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _dl(rows: list[tuple[str, Any]], test_prefix: str = "") -> str:
    items = "".join(f'<dt>{_e(k)}</dt><dd data-test="{_e(test_prefix + k)}">{_e(v)}</dd>'
                    for k, v in rows)
    return f"<dl>{items}</dl>"


def _table(head: list[str], rows: list[list[Any]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>'
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def standing_rows(standing: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """What the committees record of this volunteer: agreed results and reputation."""
    if standing is None:
        return []
    if not standing["shards"]:
        why = ("not asked yet" if not standing["asked"] else
               standing["problem"] or "no committee has a result of this node's yet")
        return [("agreed results (committees' record)", f"- ({why})")]
    return [("agreed results (committees' record)",
             f"{standing['agreed']} agreed, {standing['disagreed']} disagreed, "
             f"{standing['timeouts']} timed out, on {standing['shards']} shard(s)"),
            ("reputation", f"{standing['reputation']:.2f} (lowest shard {standing['lowest']:.2f})")]


def running_table(rows: list[dict[str, Any]]) -> str:
    """The tasks running now, each with a bar of the time it has used of its wall-clock
    allowance (the only progress visible from outside a running task) and its CPU so far."""
    if not rows:
        return '<p class="empty" data-test="running-none">no task running now</p>'
    body = []
    for r in rows:
        what = f"{r['job'][:12]}/{r['task']}.{r['replica']}" if r["job"] else "-"
        used = f"{r['elapsed_s']:.0f} of {r['allowance_s']:.0f} s"
        body.append(
            f'<tr data-test="running-task"><td>{_e(what)}</td><td>{_when(r["started"])}</td>'
            f'<td><progress max="1" value="{r["used_of_allowance"]:.3f}"></progress> '
            f'{_e(used)}</td><td>{r["cpu_s"]:.1f}</td></tr>')
    return ("<table><thead><tr><th>job/task</th><th>started</th>"
            "<th>time used of its limit</th><th>CPU s</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def contribution_svg(hours: list[dict[str, Any]]) -> str:
    """Bars of CPU seconds per hour, oldest left; the tallest bar fills the height."""
    w, h = 720, 120
    top = max([x["cpu_s"] for x in hours] + [1e-9])
    bw = w / max(1, len(hours))
    bars = []
    for i, x in enumerate(hours):
        bh = 0 if not x["cpu_s"] else max(1.0, h * x["cpu_s"] / top)
        label = f"{_when(x['hour'])}: {x['tasks']} task(s), {x['cpu_s']:.1f} CPU-s"
        bars.append(f'<rect x="{i * bw:.1f}" y="{h - bh:.1f}" width="{max(1.0, bw - 1):.1f}" '
                    f'height="{bh:.1f}"><title>{_e(label)}</title></rect>')
    return (f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="CPU seconds per '
            f'hour">{"".join(bars)}</svg>')


def availability_svg(sessions: list[tuple[float, float]], now: float, days: int = 7) -> str:
    """Up sessions over the last ``days`` days as bars on a time line (gaps: down)."""
    w, h = 720, 24
    start = now - days * 86400
    parts = []
    for s, e in sessions:
        if e < start:
            continue
        x0 = (max(s, start) - start) / (now - start) * w
        x1 = (min(e, now) - start) / (now - start) * w
        parts.append(f'<rect x="{x0:.1f}" y="0" width="{max(1.0, x1 - x0):.1f}" height="{h}">'
                     f'<title>{_e(_when(s))} - {_e(_when(e))}</title></rect>')
    return (f'<svg class="timeline" viewBox="0 0 {w} {h}" role="img" aria-label="up sessions, '
            f'last {days} days">{"".join(parts)}</svg>')


def render_main(v: dict[str, Any]) -> str:
    st, owner = v["status"], v["owner"]
    services = st["services"]
    s = owner["settings"]
    rt = services.get("runtime", {})
    cons = services.get("consensus", {})
    p2p = services.get("p2p", {})
    t = owner["totals"]
    suspended = owner["suspended"]
    action = "/resume" if suspended else "/suspend"
    label = "Resume" if suspended else "Suspend"
    csrf = _e(v["csrf"])
    work_class = "ok" if owner["work"] == "taking tasks" else "warn"
    out = [f'''
<section id="state">
  <h2>State</h2>
  <p class="work {work_class}" data-test="work">{_e(owner["work"])}</p>
  {_dl([("health", st["health"]), ("node", st["node_id"]), ("network", st["network"]),
        ("version", st["version"]), ("up", f"{st['uptime_s']:.0f} s"), ("pid", st["pid"])],
       "state.")}
  <form method="post" action="{action}" class="inline">
    <input type="hidden" name="csrf" value="{csrf}">
    <button type="submit" id="suspend-toggle" data-test="suspend-toggle">{label}</button>
  </form>
</section>''']
    out.append(f'''
<section id="settings">
  <h2>Settings</h2>
  <form method="post" action="/settings">
    <input type="hidden" name="csrf" value="{csrf}">
    <label>CPU share <input name="cpu_share" type="number" min="0.01" max="1" step="0.01"
      value="{_e(s["cpu_share"])}"></label>
    <label>Memory per task (MB) <input name="max_memory_mb" type="number" min="16" step="1"
      value="{_e(s["max_memory_mb"])}"></label>
    <label>Hours <input name="hours" pattern="([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]"
      placeholder="22:00-07:00 (empty: any time)" value="{_e(s["hours"])}"></label>
    <label><input name="idle_only" type="checkbox" value="yes"{" checked" if s["idle_only"] else ""}>
      only while the machine is idle</label>
    <button type="submit">Apply now</button>
  </form>
  <p class="note">{_e(owner["workers"])} worker(s), each running {owner["duty"]:.0%} of the time.
  Sources: {_e(", ".join(f"{k}: {src}" for k, src in owner["sources"].items()))}.</p>
  {f'<p class="error" data-test="error">{_e(v["error"])}</p>' if v.get("error") else ""}
</section>''')
    peers = p2p.get("connected", 0)
    out.append(f'''
<section id="reachability">
  <h2>Reachability</h2>
  {_dl([("connected peers", peers), ("known peers", p2p.get("known", 0)),
        ("listening on", ", ".join(p2p.get("listen", [])) or "-"),
        ("summary", p2p.get("summary", ""))], "p2p.")}
</section>''')
    reps = [[r["shard"] if r["shard"] != 0xFFFFFFFF else "directory", r["epoch"], r["view"],
             "yes" if r["primary"] else "no", r["members"], r["commits"]]
            for r in cons.get("replicas", [])]
    out.append(f'''
<section id="committees">
  <h2>Committees</h2>
  <p>{_e(cons.get("summary", ""))}</p>
  {_table(["shard", "epoch", "view", "primary", "members", "commits"], reps,
          "not on any committee this epoch")}
</section>''')
    done = [[_when(r["started"]), f"{r['job'][:12]}/{r['task']}" if r["job"] else "-",
             r["outcome"], f"{r['wall_s']:.2f}", f"{r['cpu_s']:.2f}"] for r in v["tasks"]]
    out.append(f'''
<section id="tasks">
  <h2>Tasks</h2>
  <p data-test="running">{_e(rt.get("running", 0))} running of {_e(rt.get("workers", 0))}
  worker(s); {_e(services.get("jobs", {}).get("worker", {}).get("queued", 0))} waiting.</p>
  {running_table(v.get("running", []))}
  <h3>Done</h3>
  {_table(["started", "job/task", "outcome", "wall s", "CPU s"], done, "no tasks run yet")}
</section>''')
    out.append(f'''
<section id="contribution">
  <h2>Contribution</h2>
  {_dl([("tasks run", t["tasks"]), ("OK", t["ok"]),
        ("CPU-hours", f"{t['cpu_s'] / 3600:.3f}"),
        ("by outcome", ", ".join(f"{k} {n}" for k, n in sorted(t["by_outcome"].items())) or "-"),
        ("results certified (jobs submitted here)",
         services.get("jobs", {}).get("submitter", {}).get("tasks_certified", 0)),
        *standing_rows(owner.get("standing"))], "contrib.")}
  <p class="note">CPU seconds per hour, last {len(v["hours"])} hours:</p>
  {contribution_svg(v["hours"])}
</section>''')
    sessions = v["availability"]
    out.append(f'''
<section id="availability">
  <h2>Availability</h2>
  <p class="note">When this node was up in the last 7 days: the history its availability
  forecast is made from ({len(sessions)} session(s) kept).</p>
  {availability_svg(sessions, v["now"])}
  <p class="note axis"><span>7 days ago</span><span>now</span></p>
</section>''')
    att = v["attestation"]
    facts = att.get("self_reported", {})
    out.append(f'''
<section id="attestation">
  <h2>Attestation</h2>
  {_dl([("evidence", att.get("kind", "unknown")),
        ("why", "; ".join(att.get("reasons", [])) or "-"),
        ("verified by", len(att.get("verified_by", []))),
        ("machine (self-reported)", f"{facts.get('cpu_model', '?')}, {facts.get('cpu_count', '?')} "
                                    f"cores, {int(facts.get('memory_bytes', 0)) >> 20} MiB, "
                                    f"{facts.get('os', '?')}")], "attest.")}
</section>''')
    return "".join(out)


def render(v: dict[str, Any]) -> str:
    st = v["status"]
    return f'''<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>NovaCron - {_e(st["node_id"][-8:])}</title>
<link rel="stylesheet" href="{STYLE_PATH}">
<script src="{SCRIPT_PATH}" defer></script>
</head><body>
<header><h1>NovaCron on this machine</h1>
<p class="sub">node <code>{_e(st["node_id"])}</code> on network {_e(st["network"])};
this page is only for this machine's owner (127.0.0.1).</p></header>
<main id="main" data-refresh="/?part=main">{render_main(v)}</main>
</body></html>
'''
