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
    schema.upgrade(config.database_url())
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
@click.option("--now", "now_text", default=None, help="ISO time to run at (default: the real clock)")
@click.option("--once", is_flag=True, help="sweep once and exit")
@click.option("--interval", default=30.0, show_default=True, help="seconds between sweeps")
def timers_run(now_text, once, interval):
    """Fire due BPMN timers and flag overdue dossiers and late steps."""
    import time

    factory = _factory()
    while True:
        now = clock.aware(datetime.fromisoformat(now_text)) if now_text else clock.now()
        report = timers.run_once(factory, now)
        click.echo(f"{now.isoformat()}: {report.timers_fired} timers fired, {report.dossiers_overdue} dossiers "
                   f"overdue, {report.steps_late} steps late")
        for failure in report.failures:
            click.echo(f"  failed: {failure}", err=True)
        if once or now_text:
            return
        time.sleep(interval)


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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn")
def serve(host, port, workers, dev):
    """Run the web app (gunicorn)."""
    if dev:
        from webapp import create_app

        create_app().run(host=host, port=port, debug=False)
        return
    import os

    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
                               "--access-logfile", "-", "webapp.wsgi:app"])


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
