"""A scripted browser for "Sign in with Hugging Face" tests: one httpx client, one cookie jar.

The app under test is served in-process (ASGI) at ``APP``; every other URL (FakeHub) goes over
the network, so redirects between the app and the fake Hub are followed like a browser does.
"""

import re
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request, WebSocket

from hub_auth.fastapi import HubOAuth, OAuthInfo
from hub_auth.testing import FakeHub

APP = "http://127.0.0.1:8000"


def make_app(oauth: HubOAuth, seen: list[OAuthInfo] | None = None) -> FastAPI:
    """An app with a public home page (``optional_user``) and ``/me`` (``user``)."""
    app = FastAPI()
    app.include_router(oauth.router)

    @app.get("/")
    async def home(
        request: Request, info: Annotated[OAuthInfo | None, Depends(oauth.optional_user)]
    ) -> dict[str, Any]:
        return {
            "user": info.user.username if info is not None else None,
            "error": oauth.login_error(request),
        }

    @app.get("/me")
    async def me(info: Annotated[OAuthInfo, Depends(oauth.user)]) -> dict[str, Any]:
        if seen is not None:
            seen.append(info)
        return {
            "username": info.user.username,
            "orgs": [org.username for org in info.user.orgs],
            "scopes": list(info.scopes),
            "expires_at": info.expires_at.timestamp(),
            "token": info.access_token.get_secret_value(),  # the test checks it works
        }

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, info: Annotated[OAuthInfo, Depends(oauth.user)]) -> None:
        await websocket.accept()
        await websocket.send_text(info.user.username)
        await websocket.close()

    return app


class Browser:
    def __init__(self, app: FastAPI, hub: FakeHub, base: str = APP) -> None:
        self.hub = hub
        self.client = httpx.AsyncClient(
            mounts={base: httpx.ASGITransport(app=app)}, base_url=base, follow_redirects=True
        )

    async def __aenter__(self) -> "Browser":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.aclose()

    async def start_login(self, next: str = "/") -> str:
        """Click "Sign in": return the consent page the fake Hub shows."""
        response = await self.client.get("/oauth/huggingface/login", params={"next": next})
        assert str(response.url).startswith(f"{self.hub.url}/oauth/authorize"), response.url
        assert response.status_code == 200, response.text
        return response.text

    async def decide(self, page: str, decision: str = "approve") -> httpx.Response:
        """Click Approve or Deny without following the redirect back to the app."""
        match = re.search(r'name="request_id" value="([^"]+)"', page)
        assert match is not None, page
        response = await self.client.post(
            f"{self.hub.url}/oauth/authorize",
            data={"request_id": match.group(1), "decision": decision},
            follow_redirects=False,
        )
        assert response.status_code == 302
        return response

    async def sign_in(self, next: str = "/", decision: str = "approve") -> httpx.Response:
        """The whole flow; return the app's final answer."""
        answer = await self.decide(await self.start_login(next), decision)
        return await self.client.get(answer.headers["Location"])

    def cookie(self, name: str = "hub_oauth_session") -> str | None:
        return self.client.cookies.get(name)
