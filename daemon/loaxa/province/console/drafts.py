"""Drafts and their vetting ("thẩm định"): an editor writes, an approver sends it or returns it.

    draft ──submit──▶ submitted ──approve──▶ sent
      ▲                 │   ▲
      └──── returned ◀──┘   └── submit (after the editor's changes)
    draft, returned, submitted ──withdraw──▶ withdrawn

Every change of state is one conditional UPDATE (`WHERE id = ? AND status
= <the state it leaves>`): two approvers clicking at once, or one clicking
twice, send a draft once, because the second UPDATE finds no row in the
state it expected and says so (`Stale`). An approval also names the
version the approver looked at (`submitted_at`): a draft returned, changed
and resubmitted in between is not approved unseen.

An approver never approves a draft they wrote, except an emergency, which
must never wait for a second person; such a send is marked in its sender.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select

from loaxa.errors import LoaxaError
from loaxa.jsonwire import compact
from loaxa.province.console.accounts import N_
from loaxa.province.server import schema as t
from loaxa.province.server.database import Database

log = logging.getLogger(__name__)

STATUSES = ("draft", "submitted", "returned", "sent", "withdrawn")
EDITABLE = ("draft", "returned")  # the editor may change these; a submitted draft is the approver's to judge
SENT_SHOWN = 50  # the latest sent drafts listed
CHANGED = N_("This draft was changed and submitted again since you opened it: look at it again.")


class DraftError(LoaxaError):
    """A vetting step that cannot be taken; `str()` says why in English (the audit log), `say()` in the reader's."""

    def __init__(self, template: str, **values: Any) -> None:
        super().__init__(template.format(**values))
        self.template = template
        self.values = values

    def say(self, gettext: Callable[[str], str]) -> str:
        return gettext(self.template).format(**self.values)


class NoDraft(DraftError):
    """No draft with that number."""


class NotAllowed(DraftError):
    """This user may not take this step on this draft (someone else's draft, their own approval)."""


class Stale(DraftError):
    """The draft is no longer in the state the step leaves (sent already, returned, changed meanwhile)."""

    def __init__(self, template: str, draft: Draft, **values: Any) -> None:
        super().__init__(template, **values)
        self.draft = draft


@dataclass(frozen=True)
class Draft:
    id: int
    title: str
    fields: dict[str, Any]  # the compose form as saved
    command: dict[str, Any] | None  # the bulletin it will send; None while the form does not make one
    targets: list[str]
    status: str
    editor: str
    created_at: float
    updated_at: float
    submitted_at: float | None
    approver: str | None
    approved_at: float | None
    comment: str | None
    bulletin_id: str | None

    @property
    def priority(self) -> str:
        source = self.command if self.command is not None else self.fields
        return str(source.get("priority") or "normal")

    @property
    def emergency(self) -> bool:
        return self.priority == "emergency"

    @property
    def version(self) -> str:
        """What an approval names: the submission the approver saw."""
        return repr(self.submitted_at)

    def editable_by(self, name: str) -> bool:
        return self.editor == name and self.status in EDITABLE


def _of(row: Any) -> Draft:
    return Draft(
        id=row.id,
        title=row.title,
        fields=json.loads(row.fields),
        command=json.loads(row.command) if row.command else None,
        targets=json.loads(row.targets),
        status=row.status,
        editor=row.editor,
        created_at=row.created_at,
        updated_at=row.updated_at,
        submitted_at=row.submitted_at,
        approver=row.approver,
        approved_at=row.approved_at,
        comment=row.comment,
        bulletin_id=row.bulletin_id,
    )


def create(
    db: Database,
    editor: str,
    title: str,
    fields: dict[str, Any],
    targets: list[str],
    command: dict[str, Any] | None = None,
) -> int:
    """A new draft (status `draft`); its number."""
    now = time.time()
    with db.engine.begin() as conn:
        pk: Any = conn.execute(
            t.drafts.insert().values(
                title=title[:200],
                fields=compact(fields),
                command=compact(command) if command is not None else None,
                targets=compact(targets),
                status="draft",
                editor=editor,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key
    log.info("%s wrote draft %s", editor, pk[0])
    return int(pk[0])


def load(db: Database, draft_id: int) -> Draft:
    with db.engine.connect() as conn:
        row = conn.execute(select(t.drafts).where(t.drafts.c.id == draft_id)).first()
    if row is None:
        raise NoDraft(N_("There is no draft {number}."), number=draft_id)
    return _of(row)


def save(
    db: Database,
    draft_id: int,
    editor: str,
    title: str,
    fields: dict[str, Any],
    targets: list[str],
    command: dict[str, Any] | None,
) -> Draft:
    """The editor's changes to their draft (a returned one stays returned, its comment shown, until resubmitted)."""
    d = t.drafts.c
    _change(
        db,
        draft_id,
        and_(d.editor == editor, d.status.in_(EDITABLE)),
        title=title[:200],
        fields=compact(fields),
        command=compact(command) if command is not None else None,
        targets=compact(targets),
        updated_at=time.time(),
    )
    return load(db, draft_id)


def submit(db: Database, draft_id: int, editor: str) -> Draft:
    """Hand the draft to the approvers; it needs the command its form makes."""
    d = t.drafts.c
    now = time.time()
    _change(
        db,
        draft_id,
        and_(d.editor == editor, d.status.in_(EDITABLE), d.command.is_not(None)),
        status="submitted",
        submitted_at=now,
        updated_at=now,
    )
    log.info("%s submitted draft %s for vetting", editor, draft_id)
    return load(db, draft_id)


def approve(db: Database, draft_id: int, approver: str, version: str | None = None) -> Draft:
    """Claim a submitted draft for sending: status `sent`, with the approver and the bulletin id it will have.

    The caller then sends `draft.command`; when that fails, `unsend` puts it back.
    """
    draft = load(db, draft_id)
    if version and version != draft.version and draft.status == "submitted":
        raise Stale(CHANGED, draft)
    if draft.editor == approver and not draft.emergency:
        raise NotAllowed(N_("You wrote this draft: another approver must vet it (only an emergency may skip that)."))
    if draft.command is None:
        raise _stale(draft)
    d = t.drafts.c
    now = time.time()
    # The submission loaded above, and no other: its command (and so its priority) cannot change while submitted.
    try:
        _change(
            db,
            draft_id,
            and_(d.status == "submitted", d.submitted_at == draft.submitted_at),
            status="sent",
            approver=approver,
            approved_at=now,
            bulletin_id=str(draft.command["id"]),
            updated_at=now,
        )
    except Stale as exc:
        if exc.draft.status == "submitted":  # returned and resubmitted between the load and the UPDATE
            raise Stale(CHANGED, exc.draft) from None
        raise
    log.info("%s approved draft %s (bulletin %s)", approver, draft_id, draft.command["id"])
    return load(db, draft_id)


def send_now(db: Database, draft_id: int, approver: str) -> Draft:
    """An approver's own emergency: submitted and approved in one step, no second person to wait for."""
    draft = load(db, draft_id)
    if not draft.emergency:
        raise NotAllowed(N_("Only an emergency is sent without vetting."))
    submit(db, draft_id, approver)
    return approve(db, draft_id, approver)


def unsend(db: Database, draft_id: int, approver: str) -> Draft:
    """A send that failed after `approve`: submitted again, waiting as before."""
    d = t.drafts.c
    with db.engine.begin() as conn:
        conn.execute(
            t.drafts.update()
            .where(d.id == draft_id, d.status == "sent", d.approver == approver)
            .values(status="submitted", approver=None, approved_at=None, bulletin_id=None)
        )
    return load(db, draft_id)


def give_back(db: Database, draft_id: int, approver: str, comment: str) -> Draft:
    """Return a submitted draft to its editor with the approver's comment."""
    comment = comment.strip()
    if not comment:
        raise DraftError(N_("Say what the editor should change."))
    d = t.drafts.c
    _change(
        db,
        draft_id,
        d.status == "submitted",
        status="returned",
        approver=approver,
        comment=comment[:4000],
        updated_at=time.time(),
    )
    log.info("%s returned draft %s", approver, draft_id)
    return load(db, draft_id)


def withdraw(db: Database, draft_id: int, editor: str) -> Draft:
    """The editor takes back a draft that was not sent."""
    d = t.drafts.c
    _change(
        db,
        draft_id,
        and_(d.editor == editor, d.status.in_(("draft", "submitted", "returned"))),
        status="withdrawn",
        updated_at=time.time(),
    )
    return load(db, draft_id)


def _change(db: Database, draft_id: int, condition: Any, **values: Any) -> None:
    """One conditional UPDATE; when no row matched, say why from the draft as it now is."""
    with db.engine.begin() as conn:
        done = conn.execute(t.drafts.update().where(t.drafts.c.id == draft_id, condition).values(**values))
    if done.rowcount == 1:
        return
    raise _stale(load(db, draft_id))  # NoDraft when there is none


def _stale(draft: Draft) -> Stale:
    """Why a step found the draft in no state to take it, from the draft as it now is."""
    if draft.status == "sent":
        return Stale(
            N_("This draft was sent already, by {approver}, as bulletin {bulletin}."),
            draft,
            approver=draft.approver,
            bulletin=draft.bulletin_id,
        )
    if draft.status == "withdrawn":
        return Stale(N_("This draft was withdrawn."), draft)
    if draft.status == "returned":
        return Stale(
            N_("This draft was returned to {editor} by {approver}."),
            draft,
            editor=draft.editor,
            approver=draft.approver,
        )
    if draft.status == "submitted":
        return Stale(N_("This draft is with the approvers: it cannot be changed until they return it."), draft)
    if draft.command is None:
        return Stale(N_("This draft does not make a bulletin yet: correct it and submit it."), draft)
    return Stale(N_("This draft is not submitted for vetting, or is not yours to change."), draft)


@dataclass(frozen=True)
class Listing:
    mine: list[Draft]  # my drafts not sent or withdrawn
    waiting: list[Draft]  # submitted, for approvers: emergencies first, then oldest first
    returned: list[Draft]  # returned to me, or by me
    sent: list[Draft]  # the latest sent, anyone's


def listing(db: Database, name: str, approver: bool) -> Listing:
    d = t.drafts.c
    with db.engine.connect() as conn:
        open_ = conn.execute(
            select(t.drafts).where(d.status.in_(("draft", "submitted", "returned"))).order_by(d.updated_at.desc())
        ).all()
        sent = conn.execute(
            select(t.drafts).where(d.status == "sent").order_by(d.approved_at.desc()).limit(SENT_SHOWN)
        ).all()
    drafts = [_of(r) for r in open_]
    waiting = sorted(
        (x for x in drafts if x.status == "submitted"), key=lambda x: (not x.emergency, x.submitted_at or 0)
    )
    return Listing(
        mine=[x for x in drafts if x.editor == name and x.status != "returned"],
        waiting=waiting if approver else [],
        returned=[x for x in drafts if x.status == "returned" and name in (x.editor, x.approver)],
        sent=[_of(r) for r in sent],
    )


def sender_of(draft: Draft) -> str:
    """The bulletin's sender: both names, and an emergency sent by its own author says so."""
    if draft.approver == draft.editor:
        who = f"console:{draft.approver} (editor {draft.editor}, emergency without a second approver)"
    else:
        who = f"console:{draft.approver} (editor {draft.editor})"
    return who[:120]
