"""Every HTTP route in one table; the OpenAPI document is generated from the same table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from commhub.web import (
    agent_socket,
    api_agents,
    api_audit,
    api_calls,
    api_contacts,
    api_gdpr,
    api_mail,
    console,
    console_session,
    email_view,
    health,
    lookup,
    openapi,
    webhooks,
)
from commhub.web.route_policy import ROUTE_TABLE
from commhub.web.schemas import AgentIn, ContactIn, ContactPatch, NoteIn, OrganizationIn, SessionIn

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    admin: bool = False
    public: bool = False
    query: dict[str, str] = field(default_factory=dict)  # name -> description
    status: int = 200
    # The kind of file a successful request reads or changes: written to the audit trail (route_policy.py).
    audit: str | None = None
    action: str | None = None  # the audit action, when the method does not say it (search, export, erase)
    produces: str = "application/json"  # the success response's media type, for the OpenAPI document


PAGING = {"limit": "page size (1–200, default 50)", "before": "cursor: the `next` of the previous page"}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", health.healthz, "Liveness: the process runs and the database answers", public=True),
    Route("GET", "/readyz", health.readyz, "Readiness: database reachable, schema current, push bus and mail "
          "duties working, not shutting down (503 with the reasons otherwise)", public=True),
    Route("GET", "/metrics", health.metrics, "Prometheus metrics of this node (no personal data)", public=True,
          produces="text/plain"),
    Route("GET", "/api/openapi.json", openapi.document, "This OpenAPI document", public=True),
    Route("GET", "/", console.index, "The browser agent console (HTML; signs in via /api/session)", public=True,
          produces="text/html"),
    Route("GET", "/console/{name}", console.asset, "A file of the browser console (script, style, image, sound)",
          public=True, produces="*/*"),
    Route("POST", "/api/session", console_session.sign_in,
          "Console sign-in: trade an agent token for a session cookie (commhub_session, HttpOnly)",
          body=SessionIn, public=True),
    Route("DELETE", "/api/session", console_session.sign_out,
          "Console sign-out: revoke the session cookie's token and clear the cookie", public=True, status=204),
    Route("GET", "/api/me", api_agents.me, "The signed-in agent"),
    Route("GET", "/api/agents", api_agents.list_agents, "List agents", admin=True,
          audit="agent", action="list"),
    Route("POST", "/api/agents", api_agents.create_agent, "Add an agent; the reply holds its token, shown once",
          body=AgentIn, admin=True, status=201,
          audit="agent"),
    Route("GET", "/api/me/tokens", api_agents.my_tokens, "The signed-in agent's tokens (never the secrets)",
          query={"all": "1: also expired and revoked ones"}),
    Route("GET", "/api/agents/{id}/tokens", api_agents.agent_tokens, "An agent's tokens (never the secrets)",
          admin=True, query={"all": "1: also expired and revoked ones"},
          audit="agent", action="read"),
    Route("DELETE", "/api/tokens/{id}", api_agents.revoke_token,
          "Revoke a token at once (admins any, agents their own)", status=204,
          audit="token", action="token_revoked"),
    Route("GET", "/api/audit", api_audit.audit_trail, "The audit trail, newest first (admin)", admin=True,
          query={"subject": "KIND or KIND:ID, e.g. contact:17", "agent_id": "events of this agent",
                 "action": "read, search, change, export, erase, ...", "since": "from this date (ISO 8601, UTC)",
                 "until": "before this date", "limit": "1–1000", "before": "cursor: the `next` of the previous page"},
          audit="audit", action="read"),
    Route("GET", "/api/contacts", api_contacts.list_contacts,
          "Search contacts (q, email) or match a caller's number (phone)",
          query={"q": "text in name, company or email", "phone": "caller-ID match of a number in any format",
                 "email": "exact (normalised) email address", "limit": "1–200", "after": "list after this id"},
          audit="contact", action="search"),
    Route("POST", "/api/contacts", api_contacts.create_contact, "Create a contact", body=ContactIn, status=201,
          audit="contact"),
    Route("GET", "/api/contacts/{id}", api_contacts.get_contact, "A contact's file",
          audit="contact"),
    Route("PATCH", "/api/contacts/{id}", api_contacts.patch_contact, "Change a contact (sent fields only)",
          body=ContactPatch,
          audit="contact"),
    Route("DELETE", "/api/contacts/{id}", api_contacts.delete_contact, "Delete a contact", admin=True, status=204,
          audit="contact"),
    Route("GET", "/api/contacts/{id}/history", api_contacts.contact_history, "A contact's timeline, newest first",
          query=PAGING,
          audit="contact"),
    Route("POST", "/api/contacts/{id}/notes", api_contacts.add_contact_note, "Add a note to a contact's timeline",
          body=NoteIn, status=201,
          audit="contact", action="change"),
    Route("GET", "/api/gdpr/contacts/{id}/export", api_gdpr.export,
          "GDPR export (Art. 15/20): one zip with the file, the timeline, calls, tasks, raw emails and attachments",
          admin=True, audit="contact", action="export", produces="application/zip"),
    Route("POST", "/api/gdpr/contacts/{id}/erase", api_gdpr.erase,
          "GDPR erasure (Art. 17): the person, what concerns only them, and their traces in shared entries",
          admin=True, audit="contact", action="erase"),
    Route("GET", "/api/organizations", api_contacts.list_organizations, "List or search organizations",
          query={"q": "text in the name", "limit": "1–200"},
          audit="organization", action="search"),
    Route("POST", "/api/organizations", api_contacts.create_organization, "Create an organization",
          body=OrganizationIn, status=201,
          audit="organization"),
    Route("GET", "/api/organizations/{id}", api_contacts.get_organization, "An organization's file",
          audit="organization"),
    Route("GET", "/api/calls", api_calls.list_calls, "Calls, newest first",
          query={"state": "ringing, answered, completed, missed, rejected, busy or failed",
                 "direction": "in or out", "limit": "1–200", "before": "list calls with a smaller id"},
          audit="call", action="list"),
    Route("GET", "/api/calls/{id}", api_calls.get_call, "One call: state, times, matched files, agents",
          audit="call"),
    Route("POST", "/api/calls/{id}/notes", api_calls.add_call_note,
          "Write a note on a call: it lands in the history of every file the call matched", body=NoteIn, status=201,
          audit="call", action="change"),
    Route("GET", "/api/tasks", api_calls.list_tasks, "Tasks (callbacks for missed calls, follow-ups)",
          query={"status": "open (default), done or cancelled", "mine": "1: only tasks assigned to me",
                 "limit": "1–200"},
          audit="task", action="list"),
    Route("PATCH", "/api/tasks/{id}", api_calls.patch_task, "Mark a task done, cancelled or open again",
          body=api_calls.TaskPatch,
          audit="task"),
    Route("GET", "/api/emails/{id}", api_mail.get_email,
          "One email: addresses, text, sanitised HTML, attachments, where the server keeps it, its thread",
          audit="email"),
    Route("GET", "/api/emails/{id}/attachments/{attachment_id}", api_mail.get_attachment,
          "An attachment's content (images and PDF inline, everything else as a download)",
          audit="email", produces="application/octet-stream"),
    Route("GET", "/api/emails/{id}/raw", api_mail.get_raw, "The message as received (message/rfc822)",
          audit="email", produces="message/rfc822"),
    Route("GET", "/api/emails/{id}/body.html", email_view.email_body,
          "The email as a sandboxed HTML document for an iframe (sanitised; no scripts, no remote images)",
          audit="email", produces="text/html"),
    Route("DELETE", "/api/emails/{id}", api_mail.delete_email,
          "Erase an email for good: it is never filed again from the server", admin=True, status=204,
          audit="email", action="erase"),
    Route("GET", "/api/mail/unassigned", api_mail.unassigned,
          "Mail no contact or organization matched yet, newest first (filed when a matching file appears)",
          query={"limit": "1–200", "before": "cursor: the `next` of the previous page"},
          audit="email", action="list"),
    Route("GET", "/api/mail/warnings", api_mail.warnings,
          "Oversized, unparsable or undeliverable mail, newest first", admin=True, query={"limit": "1–500"}),
    Route("GET", "/api/mail/status", api_mail.status, "Each watched folder: connected, last sync, last error",
          admin=True),
    Route("POST", "/api/mail/send", api_mail.send,
          "Send an email: filed in the history at once; 201 when the SMTP server took it, 202 when queued",
          body=api_mail.MailIn, status=201,
          audit="email"),
    Route("POST", "/hooks/{source}", webhooks.receive_hook,
          "A phone system's call event (vendor format; verified by signature or ?token=)", public=True),
    Route("GET", "/hooks/{source}", webhooks.receive_hook,
          "A call event sent as a GET (3CX call journal, dialplan CURL())", public=True),
    Route("GET", "/lookup/{source}", lookup.lookup, "Caller name for the phone's display (vendor format)",
          public=True, query={"number": "the caller's number, any format", "token": "the source's secret"}),
    Route("GET", "/ws", agent_socket.agent_socket, "The agent WebSocket (screen-pops; see the README)",
          public=True, query={"token": "agent token, if no Authorization header", "after": "resume after this seq"}),
    Route("GET", "/api/organizations/{id}/history", api_contacts.organization_history,
          "An organization's timeline (including its people), newest first", query=PAGING,
          audit="organization"),
    Route("POST", "/api/organizations/{id}/notes", api_contacts.add_organization_note,
          "Add a note to an organization's timeline", body=NoteIn, status=201,
          audit="organization", action="change"),
)


def add_routes(app: web.Application) -> None:
    app[ROUTE_TABLE] = {(route.method, route.path): route for route in ROUTES}
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
