"""The reference for bench/orgproxy_wrk.py: a minimal FastAPI organization server like the one
Claire ships, serving `GET /bots` and `POST /session?bot_id=` with the shapes of
../shared/spec/orgproxy.md (and `GET /health`).

As the reference does: uvicorn, one process; the bearer token checked with PyJWT (RS256 against
the provider's JWKS, fetched once and cached by PyJWKClient; issuer, audience, expiry); one pooled
httpx client to the Claire API; no database and no ownership records; the bots list fetched from
Claire on every `GET /bots`. Not part of Conduit: its dependencies are in bench/requirements.txt.

    CLAIRE__BASE_URL=… CLAIRE__API_KEY=… AUTH0__ISSUER=… AUTH0__AUDIENCE=… AUTH0__JWKS_URL=… \\
        python -m uvicorn bench.reference_orgserver:app --port 8001 --no-access-log
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import httpx
import jwt
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

CLAIRE_BASE_URL = os.environ["CLAIRE__BASE_URL"].rstrip("/")
CLAIRE_API_KEY = os.environ["CLAIRE__API_KEY"]
ISSUER = os.environ["AUTH0__ISSUER"]
AUDIENCE = os.environ["AUTH0__AUDIENCE"]
JWKS_URL = os.environ.get("AUTH0__JWKS_URL") or f"{ISSUER.rstrip('/')}/.well-known/jwks.json"
ENABLED_DEVICE_ACTIONS: list[str] = []

jwks = jwt.PyJWKClient(JWKS_URL, cache_jwk_set=True, lifespan=3600)
bearer = HTTPBearer()
claire: httpx.AsyncClient | None = None


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI):
    global claire
    claire = httpx.AsyncClient(
        base_url=CLAIRE_BASE_URL,
        headers={"Authorization": f"Bearer {CLAIRE_API_KEY}"},
        timeout=httpx.Timeout(10.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )
    try:
        yield
    finally:
        await claire.aclose()


app = FastAPI(title="reference organization server", lifespan=lifespan)


def current_user_id(credentials: HTTPAuthorizationCredentials = Depends(bearer)) -> str:
    token = credentials.credentials
    try:
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    except jwt.PyJWTError as exc:
        raise HTTPException(status_code=401, detail=f"Invalid token: {exc}") from None
    return claims["sub"]


def _failure(message: str) -> HTTPException:
    return HTTPException(status_code=502, detail={"message": message})


@app.get("/health")
async def health() -> dict[str, str]:
    return {"name": "reference", "status": "ok", "version": "0"}


@app.get("/bots")
async def bots(_user_id: str = Depends(current_user_id)) -> list[dict[str, Any]]:
    try:
        response = await claire.get("/m2m/organizations/bots")
    except httpx.HTTPError:
        raise _failure("Could not get bots.") from None
    if response.status_code != 200:
        raise _failure("Could not get bots.")
    return response.json()


@app.post("/session")
async def session_create(bot_id: str = Query(...), user_id: str = Depends(current_user_id)) -> dict[str, Any]:
    body = {
        "user": {"organization_user_id": user_id},
        "bot_id": bot_id.lower(),
        "enabled_device_actions": ENABLED_DEVICE_ACTIONS,
        "editable": "all_messages",
        "meta": {},
    }
    try:
        response = await claire.post("/m2m/client_sessions", json=body)
    except httpx.HTTPError:
        raise _failure("Could not create chat session.") from None
    if response.status_code != 200:
        raise _failure("Could not create chat session.")
    created = response.json()
    return {"session": created["session"], "token": created["token"]}
