"""The `motcua` command line: database, catalog, units and users, timers, notices, demo."""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from engine import catalog, clock, config
from engine.access import directory
from engine.dossiers import timers
from engine.errors import DomainError
from engine.store import schema
from engine.store.db import make_engine, make_sessionmaker


def _factory():
    return make_sessionmaker(make_engine(config.database_url()))


def _fail(exc: DomainError):
    detail = f" {exc.errors}" if getattr(exc, "errors", None) else ""
    click.echo(f"error: {exc.message}{detail}", err=True)
    sys.exit(2)


@click.group()
def main():
    """motcua — BPMN workflow engine for one-stop-shop administrative procedures."""


@main.command("init-db")
def init_db():
    """Create or upgrade the schema (Alembic upgrade head)."""
    try:
        schema.upgrade(config.database_url())
    except config.ConfigError as exc:   # e.g. migration 0012 seals existing audit logs: it needs the audit key
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"schema up to date on {make_engine().url.render_as_string(hide_password=True)}")


@main.command("load-processes")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def load_processes(directory: Path):
    """Load procedures and their BPMN versions from DIRECTORY (idempotent)."""
    with _factory()() as session:
        try:
            for line in catalog.load_processes(session, directory, actor_id=None):
                click.echo(line)
            session.commit()
        except DomainError as exc:
            session.rollback()
            _fail(exc)


@main.group()
def units():
    """Manage units."""


@units.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--parent", default=None, help="code of the parent unit")
def units_add(code, name, parent):
    with _factory()() as session:
        try:
            directory.add_unit(session, code, name, parent)
        except DomainError as exc:
            _fail(exc)
    click.echo(f"unit {code} added")


@main.group()
def users():
    """Manage users."""


@users.command("add")
@click.argument("username")
@click.option("--password", required=True)
@click.option("--unit", "unit_code", required=True)
@click.option("--role", "roles", multiple=True, required=True)
@click.option("--name", "full_name", default="")
def users_add(username, password, unit_code, roles, full_name):
    with _factory()() as session:
        try:
            directory.add_user(session, username, password, [(unit_code, r) for r in roles], full_name)
        except DomainError as exc:
            _fail(exc)
    click.echo(f"user {username} added with {', '.join(roles)} in {unit_code}")


@main.group("timers")
def timers_group():
    """Timer sweep."""


@timers_group.command("run")
@click.option("--now", "now_text", default=None, help="ISO time to run at (default: the real clock; implies --once)")
@click.option("--once", is_flag=True, help="sweep once and exit")
@click.option("--interval", default=None, type=click.FloatRange(min=0.01, max=60.0),
              help="longest wait between two looks at the database: the poll on SQLite (default 1 s); on "
                   "PostgreSQL, where changes wake the worker at once, a safety re-read (default 60 s)")
def timers_run(now_text, once, interval):
    """Fire due BPMN timers and flag overdue dossiers, late steps and unanswered supplement requests.
    Without --once: a worker that sleeps until the next due time and stops cleanly on SIGTERM or Ctrl-C
    (the batch in hand is committed first)."""
    import os
    import signal

    from engine.dossiers.timer_worker import CHANNEL, TimerWorker

    _require_audit_key()
    factory = _factory()
    if once or now_text:
        now = clock.aware(datetime.fromisoformat(now_text)) if now_text else clock.now()
        _echo_sweep(now, timers.run_once(factory, now))
        return
    try:
        worker = TimerWorker(factory, max_sleep=interval, on_report=_echo_sweep)
    except config.ConfigError as exc:  # e.g. MOTCUA_AUDIT_ANCHOR_SECONDS out of range
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    how = (f"woken by notices on {CHANNEL}, re-reading at least every {worker.max_sleep:g} s"
           if worker.listener is not None else f"polling every {worker.max_sleep:g} s")
    click.echo(f"timer worker started ({how}); SIGTERM or Ctrl-C stops it", err=True)

    def stop(signum, _frame):
        # os.write, not click.echo: a signal handler must not re-enter a buffered stream the main thread may be
        # writing to.
        os.write(2, f"{signal.Signals(signum).name}: stopping after the batch in hand\n".encode())
        worker.stop()
        # A second signal acts as usual (ends the process at once).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    totals = worker.run()
    click.echo(f"stopped after {worker.sweeps} sweeps: {totals.timers_fired} timers fired, {totals.dossiers_overdue} "
               f"dossiers overdue, {totals.steps_late} steps late, {totals.supplements_expired} supplement requests "
               "unanswered")


def _echo_sweep(now, report) -> None:
    click.echo(f"{now.isoformat()}: {report.timers_fired} timers fired, {report.dossiers_overdue} dossiers "
               f"overdue, {report.steps_late} steps late")
    for failure in report.failures:
        click.echo(f"  failed: {failure}", err=True)


@main.group("outbox")
def outbox_group():
    """Outbox of dossier events for the national portal."""


@outbox_group.command("push")
@click.option("--to", "url", required=True, help="receiver URL (each event is POSTed as JSON)")
@click.option("--attempts", default=5, show_default=True, help="consecutive failures before giving up")
@click.option("--backoff", default=1.0, show_default=True, help="seconds before the first retry (doubles)")
@click.option("--token", default=None, envvar="MOTCUA_OUTBOX_TOKEN", help="Bearer token for the receiver")
def outbox_push(url, attempts, backoff, token):
    """Deliver unsent events in order; at-least-once, each with a stable event_id."""
    from engine.dossiers import outbox

    report = outbox.push_with_retries(_factory(), url, attempts=attempts, backoff=backoff, token=token)
    click.echo(f"{report.sent} events sent, {report.failed} failed attempts")
    if report.failed and report.last_error:
        click.echo(f"  last error: {report.last_error}", err=True)
    with _factory()() as session:
        from sqlalchemy import func, select

        from engine.store.models import OutboxEvent

        left = session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at.is_(None)))
    if left:
        click.echo(f"{left} events still waiting", err=True)
        sys.exit(1)


@main.group("notices")
def notices_group():
    """Notices to applicants by e-mail and SMS."""


@notices_group.command("send")
@click.option("--once", is_flag=True, help="send what is due once and exit")
@click.option("--now", "now_text", default=None, help="ISO time to send at (default: the real clock; implies --once)")
@click.option("--interval", default=30.0, show_default=True, help="seconds between runs")
def notices_send(once, now_text, interval):
    """Send due notices (MOTCUA_SMTP_URL, MOTCUA_MAIL_FROM, MOTCUA_SMS_URL, MOTCUA_PUBLIC_URL), retrying
    failures with back-off; a channel without its setting waits."""
    import time

    from engine import notify

    settings = notify.Settings.from_env()
    if not settings.public_url:
        click.echo("error: MOTCUA_PUBLIC_URL (the web app's address, for the look-up link) is not set", err=True)
        sys.exit(2)
    if not (settings.smtp_url or settings.sms_url):
        click.echo("warning: neither MOTCUA_SMTP_URL nor MOTCUA_SMS_URL is set: nothing will be sent", err=True)
    factory = _factory()
    while True:
        now = clock.aware(datetime.fromisoformat(now_text)) if now_text else clock.now()
        try:
            report = notify.send_pending(factory, now=now, **settings.kwargs())
        except ValueError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        click.echo(f"{now.isoformat()}: {report.sent} notices sent, {report.retrying} to retry, {report.failed} failed")
        for error in report.errors:
            click.echo(f"  {error}", err=True)
        if once or now_text:
            return
        time.sleep(interval)


@main.group("audit")
def audit_group():
    """The dossiers' audit logs (hash chains keyed with the audit key, MOTCUA_AUDIT_KEY) and their anchors
    (MOTCUA_AUDIT_ANCHOR_DIR)."""


@audit_group.command("anchor")
def audit_anchor():
    """Anchor the audit chains now: seal the heads of the dossiers whose logs grew since the last anchor,
    and append every anchor not yet in the anchor files to them (the timer worker does this every
    MOTCUA_AUDIT_ANCHOR_SECONDS). Exit status 1 when nothing could be anchored or written."""
    from engine.dossiers import anchors

    _require_audit_key()
    with _factory()() as session:
        directory = anchors.directory_for(session)
        try:
            made = anchors.anchor(session, directory=directory)
        except anchors.AnchorDeferred as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except anchors.AnchorFileError as exc:
            if exc.anchor is not None:
                click.echo(_anchor_line(exc.anchor))
            then = ("" if isinstance(exc.cause, anchors.FilesAhead)
                    else "; the next anchoring writes the missing lines")
            click.echo(f"error: {exc} (in {directory}){then}", err=True)
            sys.exit(1)
        if made is not None:
            click.echo(_anchor_line(made))
            click.echo(f"written to {directory / anchors.file_name(made.created_at)}")
            return
        last, waiting = anchors.latest(session), anchors.unsealed_since(session) is not None
    if waiting:
        click.echo("another process is anchoring at this moment: nothing done here")
    else:
        click.echo("nothing new to anchor" + (f" since anchor {last.id} ({clock.local(last.created_at):%H:%M %d/%m/%Y})"
                                               if last is not None else " (no audit events yet)"))


def _anchor_line(made) -> str:
    return (f"anchor {made.id}: {made.dossiers} dossiers' heads, events up to {made.up_to_event_id}, "
            f"hash {made.hash[:16]}")


@audit_group.command("verify")
@click.option("--dossier", "code", default=None, help="check this dossier only (its code)")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="dossiers verified per query")
def audit_verify(code, batch):
    """Verify every dossier's audit log (or one's): each broken log is printed with its dossier's code,
    its first bad event and why. Then the anchors: their own chain, their roots, every dossier's latest
    anchored head against its log, and the anchor files' lines against the anchors. The exit status is 1
    when anything is broken."""
    from sqlalchemy import select

    from engine.dossiers import anchors, audit
    from engine.store.models import Dossier

    _require_audit_key()
    with _factory()() as session:
        if code is not None:
            dossier_id = session.scalar(select(Dossier.id).where(Dossier.code == code))
            if dossier_id is None:
                click.echo(f"error: no dossier {code}", err=True)
                sys.exit(2)
            check = audit.check_chain(session, dossier_id)
            click.echo(check.line())
            sys.exit(0 if check.intact else 1)
        checked = events = broken = 0
        after = 0
        while True:
            result = audit.check_batch(session, after_id=after, limit=batch)
            session.rollback()  # each batch is its own short read: a province has millions of dossiers
            if result.last_id is None:
                break
            checked, events, after = checked + result.checked, events + result.events, result.last_id
            for failure in result.failures:
                click.echo(failure.line())
                broken += 1
        directory = anchors.directory_for(session)
        verdict = anchors.verify(session, directory=directory, batch=batch)
    click.echo(f"{checked} dossiers ({events} events) checked: "
               + (f"{broken} with a broken audit log" if broken else "every audit log intact"))
    for failure in verdict.failures:
        click.echo(failure.line())
    click.echo(f"{verdict.anchors} anchors ({verdict.heads} dossiers' anchored heads, {verdict.lines} lines in "
               f"{verdict.files} files of {directory}) checked: "
               + (f"{len(verdict.failures)} problem{'s' if len(verdict.failures) > 1 else ''}" if verdict.failures
                  else "intact"))
    if verdict.overdue(clock.now()):
        click.echo(f"warning: events written since {clock.local(verdict.unsealed_since):%H:%M %d/%m/%Y} are in no "
                   "anchor yet, more than three anchoring intervals: no timer worker anchors, or another process "
                   "holds the anchoring lock", err=True)
    no_files = verdict.latest is not None and verdict.files == 0
    if no_files:  # a wrong MOTCUA_AUDIT_ANCHOR_DIR would otherwise switch the files' protection off silently
        click.echo(f"error: the database has {verdict.latest.id} anchors but {directory} holds no anchor file: the "
                   "anchors are not kept outside the database here (is MOTCUA_AUDIT_ANCHOR_DIR the workers' "
                   "directory?)", err=True)
    for first, last in verdict.unexported[:10] if not no_files else []:
        click.echo(f"warning: anchors {first}–{last} are in no anchor file"
                   + (" yet (the next anchoring writes them)" if first > verdict.exported_up_to else ""), err=True)
    sys.exit(1 if broken or verdict.failures or no_files else 0)


def _require_audit_key():
    """Refuse to start without a usable audit key (engine/config.audit_key says when one is needed)."""
    try:
        config.audit_key()
    except config.ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64),
              help="threads per worker (more than 1: gunicorn's gthread worker)")
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn")
def serve(host, port, workers, threads, dev):
    """Run the web app (gunicorn)."""
    _require_audit_key()
    if dev:
        from webapp import create_app

        create_app().run(host=host, port=port, debug=False)
        return
    import os

    # --preload: the app is imported once, before the workers fork (it opens no connection at import), so
    # they start at once and share its pages of memory.
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
                               "--threads", str(threads), "--preload", "--access-logfile", "-", "webapp.wsgi:app"])


@main.command()
@click.option("--database", default=None, help="SQLite file for the demo (default var/demo.sqlite3)")
@click.option("--serve/--no-serve", default=True, show_default=True, help="start the web app on the demo data")
@click.option("--port", default=8000, show_default=True)
def demo(database, serve, port):
    """Seed a demo office on SQLite, run dossiers through their steps, then serve the web app."""
    import os
    from pathlib import Path

    from motcua import demo as demo_mod

    path = Path(database or "var/demo.sqlite3")
    demo_mod.run(str(path))
    if not serve:
        return
    os.environ["DATABASE_URL"] = f"sqlite:///{path.resolve()}"
    os.environ.setdefault("MOTCUA_SECRET_KEY", "demo-only-secret-key-change-me")
    os.environ["MOTCUA_INSECURE_COOKIES"] = "1"  # plain http on localhost
    click.echo(f"\nỨng dụng web: http://127.0.0.1:{port}/  (Ctrl+C để dừng)")
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                               "webapp.wsgi:app"])


if __name__ == "__main__":
    main()
