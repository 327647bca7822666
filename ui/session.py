"""The session cookie of the console: its name, the key that signs it, and the routes of the console's
server that set and clear it (Streamlit cannot set a response header from a script).

After signing in, the page posts a one-minute hand-off token (`experiments.accounts.session_token`) to
the route, which answers with the session cookie: HttpOnly, SameSite=Strict, Secure over HTTPS. Signing
out has the page ask the route to clear it. This module imports nothing of the console's pages, so the
server (`ui/server.py`) loads it before Streamlit's runtime exists.
"""

from __future__ import annotations

from functools import lru_cache

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from experiments import accounts
from experiments.settings import load_settings
from experiments.store import Store, now

#: The Streamlit session's key of the signed-in account.
ACCOUNT_KEY = "account"
SESSION_COOKIE = "rhizome_session"
#: The server route that sets (POST, with a hand-off token) and clears (DELETE) the session cookie.
SESSION_ROUTE = "_rhizome/session"
#: A header every call of the route must carry: a page of another site cannot send it without the
#: browser asking the console first (CORS), which the console never allows.
CALLER_HEADER = "X-Rhizome-Console"


def secret() -> str:
    """Returns the deployment's secret, from which the tokens' signing keys derive."""
    key = load_settings().ensure_secret().secret
    assert key is not None, "ensure_secret returns settings carrying the secret"
    return key


def route_path() -> str:
    """Returns the path of the session route under the server's base URL path."""
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/{SESSION_ROUTE}" if base else f"/{SESSION_ROUTE}"


@lru_cache(maxsize=4)
def _store_of(url: str) -> Store:
    return Store(url)


def _store() -> Store:
    return _store_of(load_settings().database_url)


def _refuse(status: int, error: str) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status)


async def _open_session(request: Request) -> Response:
    """Answers a hand-off token with the session cookie of its account."""
    if request.headers.get(CALLER_HEADER) != "1":
        return _refuse(403, f"header {CALLER_HEADER}: missing, the console's pages send it")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > accounts.MAX_TOKEN:
            return _refuse(413, f"body: over {accounts.MAX_TOKEN} bytes, a hand-off token is shorter")
    at = now()
    account = await run_in_threadpool(
        accounts.token_account, _store(), secret(), body.decode("utf-8", "replace"), at, "handoff"
    )
    if account is None:
        return _refuse(403, "body: not a hand-off token of this console, or expired, or its session ended")
    response = Response(status_code=204)
    response.set_cookie(
        SESSION_COOKIE,
        accounts.session_token(secret(), account, at),
        max_age=int(accounts.TOKEN_LIFETIME["session"].total_seconds()),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


async def _end_session(request: Request) -> Response:
    """Clears the session cookie (the session itself was ended in the store by signing out)."""
    if request.headers.get(CALLER_HEADER) != "1":
        return _refuse(403, f"header {CALLER_HEADER}: missing, the console's pages send it")
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )
    return response


def routes() -> list[BaseRoute]:
    """Returns the routes of the console's server that set and clear the session cookie."""
    path = route_path()
    return [Route(path, _open_session, methods=["POST"]), Route(path, _end_session, methods=["DELETE"])]
