"""Development sessions: tests (all extras), tests-core (no extras), lint, typecheck, bench."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]


def install_and_test(session: nox.Session, extras: str, *pytest_args: str) -> None:
    session.install("-e", f".[{extras}]")
    session.run("pytest", *pytest_args, *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    install_and_test(session, "offline,standard,heif,server,ray,dev")


@nox.session(name="tests-core")
def tests_core(session: nox.Session) -> None:
    """Without the model extras: the offline-preset tests skip themselves."""
    install_and_test(session, "dev")


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]", "mypy")
    session.run("mypy", "src/imgctx")


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-e", ".[offline,standard,server,dev,bench]")
    session.run("python", "benchmarks/ingest.py")
    session.run("python", "benchmarks/retrieval.py")
    session.run("python", "benchmarks/duplicates.py")
    session.run("python", "benchmarks/server.py", "--omp-threads", "1")
    session.run("python", "benchmarks/models.py", "--threads", "1")
