"""Plays Google's OAuth 2.0 endpoints on 127.0.0.1 for allauth's Google provider.

  GET  /o/oauth2/v2/auth     the consent screen: answers at once with a redirect carrying a code
  POST /token                code (+ PKCE verifier, client credentials) for an access token
  GET  /oauth2/v2/userinfo   the profile for a bearer token

The shapes follow Google's documented responses; allauth calls them with `requests`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse


@dataclass
class GoogleUser:
    sub: str = "108234567890123456789"
    email: str = "alice.example@gmail.com"
    name: str = "Alice Example"
    given_name: str = "Alice"
    family_name: str = "Example"
    picture: str = "https://lh3.googleusercontent.com/a/alice-example=s96-c"
    email_verified: bool = True


class FakeGoogle:
    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.user = GoogleUser()
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, GoogleUser] = {}
        self.token_requests: list[dict] = []
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeGoogle:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return

            def _json(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                if parsed.path == "/o/oauth2/v2/auth":
                    if query.get("client_id") != fake.client_id or query.get("response_type") != "code":
                        self._json(400, {"error": "invalid_request"})
                        return
                    code = secrets.token_urlsafe(16)
                    fake.codes[code] = {
                        "redirect_uri": query["redirect_uri"],
                        "code_challenge": query.get("code_challenge"),
                        "user": fake.user,
                    }
                    target = query["redirect_uri"] + "?" + urlencode({"state": query.get("state", ""), "code": code})
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if parsed.path == "/oauth2/v2/userinfo":
                    token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    user = fake.tokens.get(token)
                    if user is None:
                        self._json(401, {"error": {"code": 401, "message": "Invalid Credentials"}})
                        return
                    self._json(
                        200,
                        {
                            "id": user.sub,
                            "email": user.email,
                            "verified_email": user.email_verified,
                            "name": user.name,
                            "given_name": user.given_name,
                            "family_name": user.family_name,
                            "picture": user.picture,
                        },
                    )
                    return
                self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                if urlparse(self.path).path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                fake.token_requests.append(form)
                grant = fake.codes.pop(form.get("code", ""), None)
                if (
                    grant is None
                    or form.get("client_id") != fake.client_id
                    or form.get("client_secret") != fake.client_secret
                    or form.get("redirect_uri") != grant["redirect_uri"]
                ):
                    self._json(400, {"error": "invalid_grant", "error_description": "Bad Request"})
                    return
                if grant["code_challenge"]:
                    verifier = form.get("code_verifier", "")
                    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                    if challenge.decode() != grant["code_challenge"]:
                        self._json(400, {"error": "invalid_grant", "error_description": "code_verifier mismatch"})
                        return
                token = "ya29." + secrets.token_urlsafe(24)
                fake.tokens[token] = grant["user"]
                self._json(
                    200,
                    {
                        "access_token": token,
                        "expires_in": 3599,
                        "scope": "https://www.googleapis.com/auth/userinfo.email "
                        "https://www.googleapis.com/auth/userinfo.profile",
                        "token_type": "Bearer",
                    },
                )

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="fake-google").start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
