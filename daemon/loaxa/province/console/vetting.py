"""The drafts pages: an editor saves, changes and submits; an approver looks, then approves or returns.

Approving sends at once through `bulletins.submit`, exactly as the API's
submit does (signed with the server's key, one row per expected station),
with both names in its sender, and lands the approver on the bulletin's
watch page. The state changes themselves are in `drafts`; this module turns
their refusals into pages: 403 for a step this user may not take, 409 for a
draft that moved on (sent already, returned meanwhile).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from loaxa.errors import LoaxaError
from loaxa.province.console import compose, drafts, targets
from loaxa.province.console.accounts import N_
from loaxa.province.console.web import Console, User
from loaxa.province.server import bulletins

log = logging.getLogger(__name__)


STATUS_WORDS = {
    "draft": N_("draft"),
    "submitted": N_("waiting for vetting"),
    "returned": N_("returned"),
    "sent": N_("sent"),
    "withdrawn": N_("withdrawn"),
}
NO_DRAFT = N_("There is no such draft.")


DONE = {
    "saved": N_("The draft is saved."),
    "submitted": N_("The draft is submitted: an approver will vet it."),
    "returned": N_("The draft was returned to its editor with your comment."),
    "withdrawn": N_("The draft is withdrawn."),
}


def _draft_id(request: Request) -> int:
    try:
        return int(request.path_params["id"])
    except ValueError:
        raise HTTPException(404, NO_DRAFT) from None


def _load(console: Console, draft_id: int) -> drafts.Draft:
    try:
        return drafts.load(console.ctx.db, draft_id)
    except drafts.NoDraft:
        raise HTTPException(404, NO_DRAFT) from None


def _refused(console: Console, request: Request, user: User, exc: drafts.DraftError) -> Response:
    """A step the draft's state or the user's part does not allow: 403 or 409, in the reader's words."""
    request.state.audit_detail = f"refused: {exc}"
    status = 403 if isinstance(exc, drafts.NotAllowed) else 409
    if isinstance(exc, drafts.NoDraft):
        status = 404
    draft = exc.draft if isinstance(exc, drafts.Stale) else None
    return console.render(
        request,
        "drafts_refused.html",
        status_code=status,
        message=exc.say(console.gettext(user.language)),
        draft=draft,
    )


def check(console: Console, draft_id: int, fields: dict[str, Any]) -> compose.Checked:
    s = console.ctx.settings
    return compose.check(
        fields,
        province=s.province.id,
        zone=s.province.timezone,
        bulletin_id=compose.bulletin_id_for(draft_id),
    )


def after_edit(
    console: Console, request: Request, user: User, draft_id: int, fields: dict[str, Any], action: str
) -> Response:
    """Save the form into the draft, then submit it (or, an approver's emergency, send it) when asked."""
    db = console.ctx.db
    checked = check(console, draft_id, fields)
    try:
        drafts.save(db, draft_id, user.name, fields["title"] or "?", fields, fields["targets"], checked.command)
    except drafts.DraftError as exc:
        return _refused(console, request, user, exc)
    if action not in ("submit", "send"):
        request.state.audit_detail = f"draft {draft_id} saved"
        return RedirectResponse(f"/drafts/{draft_id}?done=saved", status_code=303)
    if checked.command is None:
        request.state.audit_detail = f"draft {draft_id} saved, not submitted: {', '.join(checked.problems)}"
        return edit_page(console, request, user, drafts.load(db, draft_id), checked, status_code=422, unsent=True)
    try:
        if action == "send" and user.can("approver") and fields["priority"] == "emergency":
            draft = drafts.send_now(db, draft_id, user.name)
            return deliver(console, request, user, draft)
        drafts.submit(db, draft_id, user.name)
    except drafts.DraftError as exc:
        return _refused(console, request, user, exc)
    request.state.audit_detail = f"draft {draft_id} submitted for vetting"
    return RedirectResponse(f"/drafts/{draft_id}?done=submitted", status_code=303)


def deliver(console: Console, request: Request, user: User, draft: drafts.Draft) -> Response:
    """Send an approved draft as the API does; on failure it waits for vetting again and the page says why."""
    ctx = console.ctx
    s = ctx.settings
    assert draft.command is not None
    sender = drafts.sender_of(draft)
    try:
        summary = bulletins.submit(
            ctx.db,
            ctx.publish,
            prefix=s.province.prefix,
            province=s.province.id,
            command=draft.command,
            targets=draft.targets,
            sender=sender,
            key_file=str(s.signing.key_file) if s.signing.key_file else None,
        )
    except LoaxaError as exc:
        drafts.unsend(ctx.db, draft.id, user.name)
        log.warning("draft %s approved by %s but not sent: %s", draft.id, user.name, exc)
        request.state.audit_detail = f"draft {draft.id} approved but not sent: {exc}"
        _ = console.gettext(user.language)
        return console.render(
            request,
            "drafts_refused.html",
            status_code=502,
            message=_("The bulletin could not be sent; the draft waits for vetting again.") + f" ({exc})",
            draft=drafts.load(ctx.db, draft.id),
        )
    alone = " (an emergency its author sent without a second approver)" if draft.approver == draft.editor else ""
    request.state.audit_detail = (
        f"draft {draft.id} by {draft.editor} approved by {draft.approver}{alone}: sent as bulletin "
        f"{summary['id']} to {', '.join(draft.targets)} ({summary['stations']} stations expected)"
    )
    return RedirectResponse(f"/bulletins/{summary['id']}", status_code=303)


def edit_page(
    console: Console,
    request: Request,
    user: User,
    draft: drafts.Draft,
    checked: compose.Checked | None = None,
    status_code: int = 200,
    unsent: bool = False,
) -> Response:
    checked = checked or check(console, draft.id, draft.fields)
    _ = console.gettext(user.language)
    done = DONE.get(request.query_params.get("done", ""))
    return console.render(
        request,
        "compose.html",
        status_code=status_code,
        draft=draft,
        done=_(done) if done else None,
        unsent=unsent,
        **compose.form_values(console, request, user, draft.fields, problems=checked.said(_)),
    )


def view_page(console: Console, request: Request, user: User, draft: drafts.Draft, **more: Any) -> Response:
    """The draft as the approver judges it: the spoken preview, the targets and their count, the schedule."""
    ctx = console.ctx
    _ = console.gettext(user.language)
    reached, _bad = targets.count(ctx.db, ctx.settings.province.id, draft.targets)
    done = DONE.get(request.query_params.get("done", ""))
    vetting = draft.status == "submitted" and user.can("approver")
    expired = _expired(draft)
    nodes = targets.tree(ctx.db, ctx.settings.province.id)
    return console.render(
        request,
        "drafts_view.html",
        target_nodes=nodes.by_path(),
        draft=draft,
        fields=draft.fields,
        reached=reached,
        schedule=compose.schedule_words(draft.fields, _),
        priority_labels=compose.PRIORITY_LABELS,
        priority_words=compose.PRIORITY_WORDS,
        status_words=STATUS_WORDS,
        can_approve=vetting and (draft.editor != user.name or draft.emergency) and not expired,
        own=draft.editor == user.name,
        expired=expired,
        late=_late(draft) if draft.status == "submitted" else None,
        can_return=vetting,
        can_withdraw=draft.editor == user.name and draft.status in ("draft", "submitted", "returned"),
        done=_(done) if done else None,
        **more,
    )


def _expired(draft: drafts.Draft) -> str | None:
    """The expiry of a draft whose bulletin would be dropped by every station on arrival."""
    return _past((draft.command or {}).get("expires"))


def _late(draft: drafts.Draft) -> str | None:
    """The time a once-only draft was to air, when that has passed."""
    return _past(((draft.command or {}).get("schedule") or {}).get("at"))


def _past(when: str | None) -> str | None:
    if not when:
        return None
    try:
        return when if datetime.fromisoformat(when) <= datetime.now(UTC) else None
    except ValueError:
        return None


def routes(console: Console) -> list[BaseRoute]:
    db = console.ctx.db

    def listing(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        found = drafts.listing(db, user.name, user.can("approver"))
        return console.render(
            request,
            "drafts.html",
            listing=found,
            status_words=STATUS_WORDS,
            priority_words=compose.PRIORITY_WORDS,
        )

    def one(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        draft = _load(console, _draft_id(request))
        if draft.editable_by(user.name) and request.query_params.get("view") != "1":
            return edit_page(console, request, user, draft)
        return view_page(console, request, user, draft)

    def save(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        draft = _load(console, _draft_id(request))
        return after_edit(
            console, request, user, draft.id, compose.fields_of(form), str((form or {}).get("action") or "save")
        )

    def submit(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        draft = _load(console, _draft_id(request))
        form = form or {}
        fields = compose.fields_of(form) if "title" in form else draft.fields  # a bare submit sends it as saved
        action = "send" if form.get("action") == "send" else "submit"
        return after_edit(console, request, user, draft.id, fields, action)

    def approve(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        draft = _load(console, _draft_id(request))
        expired = _expired(draft)
        if expired and draft.status == "submitted":
            request.state.audit_detail = f"refused: draft {draft.id} expired at {expired}"
            _ = console.gettext(user.language)
            message = _("This bulletin expired at {time}: stations would drop it. Return it to the editor.")
            return console.render(
                request, "drafts_refused.html", status_code=409, message=message.format(time=expired), draft=draft
            )
        try:
            draft = drafts.approve(db, draft.id, user.name, version=str((form or {}).get("version") or "") or None)
        except drafts.DraftError as exc:
            return _refused(console, request, user, exc)
        return deliver(console, request, user, draft)

    def give_back(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        draft = _load(console, _draft_id(request))
        try:
            drafts.give_back(db, draft.id, user.name, str((form or {}).get("comment") or ""))
        except drafts.Stale as exc:
            return _refused(console, request, user, exc)
        except drafts.DraftError as exc:
            request.state.audit_detail = f"refused: {exc}"
            error = exc.say(console.gettext(user.language))
            return view_page(console, request, user, draft, error=error, status_code=400)
        request.state.audit_detail = f"draft {draft.id} returned to {draft.editor}"
        return RedirectResponse("/drafts?done=returned", status_code=303)

    def withdraw(request: Request, user: User, form: dict[str, Any] | None) -> Response:
        draft = _load(console, _draft_id(request))
        try:
            drafts.withdraw(db, draft.id, user.name)
        except drafts.DraftError as exc:
            return _refused(console, request, user, exc)
        request.state.audit_detail = f"draft {draft.id} withdrawn"
        return RedirectResponse("/drafts?done=withdrawn", status_code=303)

    return [
        Route("/drafts", console.page("editor")(listing), methods=["GET"]),
        Route("/drafts/{id}", console.page("editor")(one), methods=["GET"]),
        Route("/drafts/{id}/save", console.page("editor")(save), methods=["POST"]),
        Route("/drafts/{id}/submit", console.page("editor")(submit), methods=["POST"]),
        Route("/drafts/{id}/approve", console.page("approver")(approve), methods=["POST"]),
        Route("/drafts/{id}/return", console.page("approver")(give_back), methods=["POST"]),
        Route("/drafts/{id}/withdraw", console.page("editor")(withdraw), methods=["POST"]),
    ]
