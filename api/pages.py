"""Small HTML pages: the verification landing page and, in development, the mailbox."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Sequence
from typing import Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse

_VERIFY_SCRIPT = """
const token = new URLSearchParams(location.search).get("token") || "";
const button = document.getElementById("verify");
const result = document.getElementById("result");
const query = `mutation Verify($token: String!) {
  verifyEmail(token: $token) {
    __typename
    ... on VerifyEmailSuccess { user { email } }
    ... on InvalidToken { message }
    ... on ExpiredToken { message }
  }
}`;
if (!token) { button.disabled = true; result.textContent = "This link has no token: open the link from the email exactly as it was sent."; }
button.addEventListener("click", async () => {
  button.disabled = true;
  result.textContent = "Confirming…";
  try {
    const response = await fetch("graphql", {
      method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({query, variables: {token}}),
    });
    const body = await response.json();
    const outcome = body.data && body.data.verifyEmail;
    if (!outcome) { throw new Error((body.errors && body.errors[0].message) || response.statusText); }
    result.dataset.outcome = outcome.__typename;
    result.textContent = outcome.__typename === "VerifyEmailSuccess"
      ? `Thank you: ${outcome.user.email} is confirmed.`
      : outcome.message;
  } catch (error) {
    button.disabled = false;
    result.dataset.outcome = "error";
    result.textContent = "Could not reach the server; try again. (" + error.message + ")";
  }
});
"""


def _script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


_VERIFY_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width">
<title>Confirm your email address</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem; color: #1d1d1f; }}
button {{ font-size: 1rem; padding: .75rem 1.25rem; border-radius: .4rem; border: 0; background: #0a66c2; color: #fff; cursor: pointer; }}
button:disabled {{ background: #8aa; cursor: default; }}
#result {{ margin-top: 1.5rem; min-height: 1.5rem; }}
</style>
</head>
<body>
<h1>Confirm your email address</h1>
<p>Press the button to confirm your address. Opening this page alone changes nothing.</p>
<button id="verify" type="button">Confirm my address</button>
<p id="result" role="status" aria-live="polite"></p>
<script>{_VERIFY_SCRIPT}</script>
</body>
</html>
"""

# The token travels in the URL: keep it out of Referer headers, and allow the
# page to run only its own script and talk only to this server.
_VERIFY_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src '{_script_hash(_VERIFY_SCRIPT)}'; "
        "style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


async def verify_email_page(request: Request) -> HTMLResponse:
    # A GET must never consume the token: mail scanners and link previews open
    # links before the person does. The button sends the mutation instead.
    return HTMLResponse(_VERIFY_PAGE, headers=_VERIFY_HEADERS)


class CaughtMessage(Protocol):
    @property
    def recipients(self) -> Sequence[str]: ...
    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def received_at(self) -> str: ...


_URL = re.compile(r"https?://[^\s<>\"]+")


def _linkify(text: str) -> str:
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        url = html.escape(match.group(0))
        out.append(f'<a href="{url}">{url}</a>')
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def mailbox_page(messages: Sequence[CaughtMessage]) -> HTMLResponse:
    items = "".join(
        f"<article><h2>{html.escape(m.subject)}</h2>"
        f"<p class=meta>To {html.escape(', '.join(m.recipients))} at {html.escape(m.received_at)}</p>"
        f"<pre>{_linkify(m.text)}</pre></article>"
        for m in reversed(messages)
    )
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5"><title>Herald dev mailbox</title>
<style>body{{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}}
article{{border:1px solid #ddd;border-radius:.4rem;padding:0 1rem;margin:1rem 0}}
.meta{{color:#666;font-size:.9rem}} pre{{white-space:pre-wrap}}</style></head>
<body><h1>Mailbox ({len(messages)})</h1>
<p>Every email Herald sent while <code>herald dev</code> runs; this page refreshes itself.</p>
{items or "<p>No email yet: run the register mutation in <a href='/graphql'>GraphiQL</a>.</p>"}
</body></html>"""
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
