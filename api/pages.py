"""Small HTML pages: the verification landing page and, in development, the mailbox."""

from __future__ import annotations

import base64
import hashlib

from starlette.requests import Request
from starlette.responses import HTMLResponse

_VERIFY_SCRIPT = """
const token = new URLSearchParams(location.search).get("token") || "";
const button = document.getElementById("verify");
const result = document.getElementById("result");
const resend = document.getElementById("resend");
resend.addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = document.getElementById("email").value;
  const sent = document.getElementById("resent");
  const body = await (await fetch("graphql", {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({
      query: `mutation Resend($email: String!) { resendVerificationEmail(email: $email) {
        __typename ... on InvalidInput { message } ... on RateLimited { message } } }`,
      variables: {email},
    }),
  })).json();
  const outcome = body.data && body.data.resendVerificationEmail;
  sent.textContent = !outcome ? "Could not reach the server; try again."
    : outcome.__typename === "ResendVerificationEmailSuccess"
      ? "If this address has an account waiting for confirmation, a new link is on its way."
      : outcome.message;
});
const query = `mutation Verify($token: String!) {
  verifyEmail(token: $token) {
    __typename
    ... on VerifyEmailSuccess { user { email } mustChoosePassword }
    ... on InvalidToken { message }
    ... on ExpiredToken { message }
  }
}`;
// Watch mode: a sign-up screen may send its user to
// /verify-email#registration=<registrationToken> to follow the email live.
// The fragment never reaches the server or its logs.
const watched = new URLSearchParams(location.hash.slice(1)).get("registration");
const labels = {
  EmailQueued: "Your confirmation email is on its way…",
  EmailSent: "Email sent: open the link in it to confirm your address.",
  EmailVerified: "Confirmed. You can close this page.",
};
function watch(registrationToken) {
  document.getElementById("title").textContent = "Check your inbox";
  document.getElementById("intro").textContent = "This page follows your confirmation email as it happens.";
  button.hidden = true;
  const url = new URL("graphql", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url, "graphql-transport-ws");
  socket.onopen = () => socket.send(JSON.stringify({type: "connection_init", payload: {}}));
  socket.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "ping") socket.send(JSON.stringify({type: "pong"}));
    if (data.type === "connection_ack") {
      socket.send(JSON.stringify({id: "1", type: "subscribe", payload: {
        query: `subscription Watch($t: String!) { registrationEvents(registrationToken: $t) {
          __typename ... on EmailDeliveryFailed { willRetry retryAt } } }`,
        variables: {t: registrationToken}}}));
    }
    if (data.type === "next" && data.payload.errors) {
      result.dataset.outcome = "error";
      result.textContent = data.payload.errors[0].message;
    } else if (data.type === "next") {
      const event = data.payload.data.registrationEvents;
      result.dataset.outcome = event.__typename;
      result.textContent = event.__typename !== "EmailDeliveryFailed" ? labels[event.__typename]
        : event.willRetry ? `Sending failed; trying again at ${new Date(event.retryAt).toLocaleTimeString()}.`
        : "We could not deliver the email. Check the address, or ask for a new link below.";
      resend.hidden = event.__typename !== "EmailDeliveryFailed" || event.willRetry;
    }
  };
}
if (watched) { watch(watched); }
else if (!token) { button.disabled = true; result.textContent = "This link has no token: open the link from the email exactly as it was sent."; }
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
    result.textContent = outcome.__typename !== "VerifyEmailSuccess" ? outcome.message
      : outcome.mustChoosePassword
        ? `Thank you: ${outcome.user.email} is confirmed. Someone else also signed up with this address, so choose your password with the link we just emailed you.`
        : `Thank you: ${outcome.user.email} is confirmed.`;
    resend.hidden = outcome.__typename === "VerifyEmailSuccess";
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
input {{ font-size: 1rem; padding: .6rem; width: 16rem; margin-right: .5rem; }}
</style>
</head>
<body>
<h1 id="title">Confirm your email address</h1>
<p id="intro">Press the button to confirm your address. Opening this page alone changes nothing.</p>
<button id="verify" type="button">Confirm my address</button>
<p id="result" role="status" aria-live="polite"></p>
<form id="resend" hidden>
<p>Need a new link? Enter your address:</p>
<input id="email" type="email" required autocomplete="email">
<button type="submit">Send a new link</button>
<p id="resent" role="status" aria-live="polite"></p>
</form>
<script>{_VERIFY_SCRIPT}</script>
</body>
</html>
"""


def _page_headers(script: str) -> dict[str, str]:
    """A page with a token in its URL: keep it out of Referer headers, and let
    the page run only its own script and talk only to this server."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src '{_script_hash(script)}'; "
            "style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }


_VERIFY_HEADERS = _page_headers(_VERIFY_SCRIPT)


async def verify_email_page(request: Request) -> HTMLResponse:
    # A GET must never consume the token: mail scanners and link previews open
    # links before the person does. The button sends the mutation instead.
    return HTMLResponse(_VERIFY_PAGE, headers=_VERIFY_HEADERS)


def _simple_page(title: str, body: str, script: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem; color: #1d1d1f; }}
button {{ font-size: 1rem; padding: .75rem 1.25rem; border-radius: .4rem; border: 0; background: #0a66c2; color: #fff; cursor: pointer; }}
button:disabled {{ background: #8aa; cursor: default; }}
#result {{ margin-top: 1.5rem; min-height: 1.5rem; }}
input {{ font-size: 1rem; padding: .6rem; width: 16rem; margin: 0 .5rem .75rem 0; display: block; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
<p id="result" role="status" aria-live="polite"></p>
<script>{script}</script>
</body>
</html>
"""


# Shared by the account pages: one GraphQL call, its outcome shown in #result.
_CALL = """
async function call(query, variables, field) {
  const result = document.getElementById("result");
  try {
    const response = await fetch("graphql", {method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({query, variables})});
    const body = await response.json();
    const outcome = body.data && body.data[field];
    if (!outcome) throw new Error((body.errors && body.errors[0].message) || response.statusText);
    result.dataset.outcome = outcome.__typename;
    const problems = (outcome.fields || []).map((f) => f.message).join(" ");
    result.textContent = [outcome.message, problems].filter(Boolean).join(" ");
    return outcome;
  } catch (error) {
    result.dataset.outcome = "error";
    result.textContent = "Could not reach the server; try again. (" + error.message + ")";
    return null;
  }
}
const token = new URLSearchParams(location.search).get("token") || "";
"""

_RESET_SCRIPT = (
    _CALL
    + """
const choose = document.getElementById("choose");
const ask = document.getElementById("ask");
if (token) { choose.hidden = false; } else { ask.hidden = false; }
choose.addEventListener("submit", async (event) => {
  event.preventDefault();
  const password = document.getElementById("password").value;
  if (password !== document.getElementById("again").value) {
    document.getElementById("result").textContent = "The two passwords differ.";
    return;
  }
  const outcome = await call(`mutation Reset($token: String!, $password: String!) {
    resetPassword(token: $token, newPassword: $password) { __typename
      ... on InvalidToken { message } ... on ExpiredToken { message }
      ... on InvalidInput { message fields { message } } } }`, {token, password}, "resetPassword");
  if (outcome && outcome.__typename === "ResetPasswordSuccess") {
    document.getElementById("result").textContent =
      "Your password was changed, and every session signed out. Sign in with the new one.";
    choose.hidden = true;
  } else if (outcome && outcome.__typename !== "InvalidInput") {
    ask.hidden = false;
  }
});
ask.addEventListener("submit", async (event) => {
  event.preventDefault();
  await call(`mutation Ask($email: String!) { requestPasswordReset(email: $email) { __typename
    ... on RequestPasswordResetSuccess { message } ... on InvalidInput { message }
    ... on RateLimited { message } } }`, {email: document.getElementById("email").value},
    "requestPasswordReset");
});
"""
)

_RESET_PAGE = _simple_page(
    "Choose a new password",
    """<form id="choose" hidden>
<input id="password" type="password" required minlength="8" autocomplete="new-password" placeholder="New password">
<input id="again" type="password" required minlength="8" autocomplete="new-password" placeholder="The same again">
<button type="submit">Change my password</button>
</form>
<form id="ask" hidden>
<p>Enter your address and we will email you a link to choose a new password.</p>
<input id="email" type="email" required autocomplete="email">
<button type="submit">Email me a link</button>
</form>""",
    _RESET_SCRIPT,
)

_CONFIRM_CHANGE_SCRIPT = (
    _CALL
    + """
const button = document.getElementById("confirm");
if (!token) { button.disabled = true; }
button.addEventListener("click", async () => {
  button.disabled = true;
  const outcome = await call(`mutation Confirm($token: String!) {
    confirmEmailChange(token: $token) { __typename
      ... on ConfirmEmailChangeSuccess { user { email } }
      ... on InvalidToken { message } ... on ExpiredToken { message }
      ... on AddressUnavailable { message } } }`, {token}, "confirmEmailChange");
  if (outcome && outcome.__typename === "ConfirmEmailChangeSuccess") {
    document.getElementById("result").textContent =
      `Done: your account now uses ${outcome.user.email}.`;
  } else if (!outcome) { button.disabled = false; }
});
"""
)

_CONFIRM_CHANGE_PAGE = _simple_page(
    "Confirm your new email address",
    """<p>Press the button to move your account to this address. Opening this page alone changes nothing.</p>
<button id="confirm" type="button">Confirm my new address</button>""",
    _CONFIRM_CHANGE_SCRIPT,
)


async def reset_password_page(request: Request) -> HTMLResponse:
    # As for verification, a GET consumes nothing: the form sends the mutation.
    return HTMLResponse(_RESET_PAGE, headers=_page_headers(_RESET_SCRIPT))


async def confirm_email_change_page(request: Request) -> HTMLResponse:
    return HTMLResponse(_CONFIRM_CHANGE_PAGE, headers=_page_headers(_CONFIRM_CHANGE_SCRIPT))


_MAILBOX_SCRIPT = """
const list = document.getElementById("messages");
const count = document.getElementById("count");
const shown = new Set();
const labels = {EmailQueued: "queued", EmailSent: "sent", EmailDeliveryFailed: "failed",
                EmailVerified: "verified"};
let socket = null, ready = null, next = 0;
const watchers = {};

function connect() {
  socket = new WebSocket(location.origin.replace(/^http/, "ws") + "/graphql", "graphql-transport-ws");
  ready = new Promise((resolve) => {
    socket.onopen = () => socket.send(JSON.stringify({type: "connection_init", payload: {}}));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "connection_ack") resolve();
      if (message.type === "ping") socket.send(JSON.stringify({type: "pong"}));
      if (message.type === "next" && watchers[message.id]) {
        const data = message.payload.data && message.payload.data.registrationEvents;
        if (data) watchers[message.id](data);
      }
    };
  });
}

async function watch(token, badge) {
  if (!socket) connect();
  await ready;
  const id = String(++next);
  watchers[id] = (event) => {
    let text = labels[event.__typename] || event.__typename;
    if (event.__typename === "EmailDeliveryFailed" && event.willRetry) text = "failed, retrying";
    badge.textContent = text;
    badge.dataset.step = event.__typename;
  };
  socket.send(JSON.stringify({id, type: "subscribe", payload: {
    query: `subscription($t: String!) { registrationEvents(registrationToken: $t) {
      __typename ... on EmailDeliveryFailed { willRetry } } }`,
    variables: {t: token}}}));
}

function linkify(parent, text) {
  const url = /https?:\\/\\/[^\\s<>"]+/g;
  let last = 0, match;
  while ((match = url.exec(text)) !== null) {
    parent.append(text.slice(last, match.index));
    const a = document.createElement("a");
    a.href = match[0];
    a.textContent = match[0];
    parent.append(a);
    last = match.index + match[0].length;
  }
  parent.append(text.slice(last));
}

async function refresh() {
  try {
    const messages = await (await fetch("/dev/mail.json", {cache: "no-store"})).json();
    count.textContent = messages.length;
    for (const m of messages) {
      if (shown.has(m.id)) continue;
      shown.add(m.id);
      const article = document.createElement("article");
      const title = document.createElement("h2");
      title.textContent = m.subject + " ";
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = m.registrationToken ? "…" : "";
      title.append(badge);
      const meta = document.createElement("p");
      meta.className = "meta";
      meta.textContent = `To ${m.to.join(", ")} at ${m.receivedAt}`;
      const body = document.createElement("pre");
      linkify(body, m.text);
      article.append(title, meta, body);
      list.prepend(article);
      document.getElementById("empty").hidden = true;
      if (m.registrationToken) watch(m.registrationToken, badge);
    }
  } finally {
    setTimeout(refresh, 1000);
  }
}
refresh();
"""

_MAILBOX_PAGE = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Herald dev mailbox</title>
<style>body{{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}}
article{{border:1px solid #ddd;border-radius:.4rem;padding:0 1rem;margin:1rem 0}}
.meta{{color:#666;font-size:.9rem}} pre{{white-space:pre-wrap;overflow-wrap:anywhere}}
.badge{{font-size:.8rem;font-weight:normal;border-radius:1rem;padding:.15rem .6rem;background:#eee;vertical-align:middle}}
.badge[data-step=EmailSent]{{background:#def}} .badge[data-step=EmailVerified]{{background:#dfd}}
.badge[data-step=EmailDeliveryFailed]{{background:#fdd}}</style></head>
<body><h1>Mailbox (<span id="count">0</span>)</h1>
<p>Every email Herald sent while <code>herald dev</code> runs, newest first. Each one's
registration is followed live: <em>sent</em> turns to <em>verified</em> when its link is used.</p>
<p id="empty">No email yet: run the register mutation in <a href="/graphql">GraphiQL</a>.</p>
<div id="messages"></div>
<script>{_MAILBOX_SCRIPT}</script>
</body></html>"""

_MAILBOX_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src '{_script_hash(_MAILBOX_SCRIPT)}'; "
        "style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
}


async def mailbox_page(request: Request) -> HTMLResponse:
    return HTMLResponse(_MAILBOX_PAGE, headers=_MAILBOX_HEADERS)
