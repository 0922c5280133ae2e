"""`mwe review`: check a set's labels by hand in a local web page."""

from __future__ import annotations

import getpass
import webbrowser
from typing import Any

import click

from mwe.cli.app import open_store
from mwe.cli.output import console
from mwe.review.reviews import check_reviewer
from mwe.terminal import shown


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return "reviewer"


@click.command("review")
@click.argument("ref")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    help="Review a seeded random sample of N items (Perez et al. checked 100 per set).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--reviewer", help="Your name, stored with each answer [default: your user name].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free."
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Serve on an address other machines can reach (anyone there can read and answer).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
@click.pass_context
def review_cmd(
    ctx: click.Context,
    ref: str,
    sample: int | None,
    seed: int,
    reviewer: str | None,
    host: str,
    port: int,
    allow_remote: bool,
    open_browser: bool,
) -> None:
    """Check the labels of set REF by hand in a local web page, one item at a time.

    For each item say whether its label is right (y / n / u for unsure), how relevant it is to
    the behaviour (1-5) and, if you like, a comment (c); Enter saves and moves on. Every answer
    is stored at once: stop whenever you like, and the same command resumes at your first
    unanswered item. The judge's confidence in a label is shown only after you answer it.
    Several reviewers may review the same set (give --reviewer); `mwe show` and `mwe report`
    then show the agreement, relevance, kappa and judge-vs-human figures.

    REF may also name a rollout suite (`mwe rollout`): then each transcript is shown with the
    judge's quoted evidence marked, and you score how strongly the target shows the behaviour,
    1-10 (keys 1-9, 0 for 10); `mwe judge-check SUITE` compares the judge with those scores.
    """
    from mwe.review.server import (
        allowed_hosts,
        bind,
        check_host,
        create_app,
        create_transcript_app,
        serve,
        start_session,
        start_transcript_session,
    )
    from mwe.store import SetRef

    name = check_reviewer(reviewer or _default_reviewer())
    check_host(host, allow_remote)
    with open_store(ctx, read_only=False) as store:  # read-write: it migrates an older store
        is_set = SetRef.parse(ref).name in store.names()
        suite = None if is_set else _suite(store, ref)
        if suite is not None:
            t_session = start_transcript_session(
                store, suite, name, sample, seed, str(ctx.obj["db"])
            )
            done = len(t_session.scored(store))
        else:
            session = start_session(store, ref, name, sample, seed, str(ctx.obj["db"]))
            done = len({r.idx for r in store.reviews(session.info, name)} & set(session.order))
    if suite is not None:
        sock = bind(host, port)
        url = _url(host, sock)
        console.print(
            f"Reviewing the transcripts of {shown(suite.ref)} as {shown(name)}: "
            f"{len(t_session.order):,} transcripts, {done:,} scored so far."
        )
        click.echo(f"Open {url}  (scores are saved as you go; Ctrl-C stops the server)", err=False)
        if open_browser:
            webbrowser.open(url)
        serve(create_transcript_app(t_session, hosts=allowed_hosts(host, allow_remote)), sock)
        return
    sock = bind(host, port)
    url = _url(host, sock)
    console.print(
        f"Reviewing {shown(session.info.ref)} as {shown(name)}: {len(session.order):,} items, "
        f"{done:,} answered so far."
    )
    # Printed plainly on a line of its own: scripts (and the tests) read the address from it.
    click.echo(f"Open {url}  (answers are saved as you go; Ctrl-C stops the server)", err=False)
    if open_browser:
        webbrowser.open(url)
    app = create_app(session, hosts=allowed_hosts(host, allow_remote))
    serve(app, sock)
    with open_store(ctx, read_only=True) as store:
        done = len({r.idx for r in store.reviews(session.info, name)} & set(session.order))
    console.print(f"Stopped: {done:,} of {len(session.order):,} items answered by {shown(name)}.")


def _url(host: str, sock: Any) -> str:
    shown_host = f"[{host}]" if ":" in host else host
    return f"http://{shown_host}:{sock.getsockname()[1]}/"


def _suite(store: Any, ref: str) -> Any:
    """The rollout suite ``ref`` names, or None (then REF is taken as a set)."""
    from mwe.errors import NotFoundError

    try:
        return store.resolve_suite(ref)
    except NotFoundError:
        return None


COMMANDS = (review_cmd,)
