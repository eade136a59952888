"""Commune approval (Thông tư 39/2020/TT-BTTTT): which bulletins wait for the commune, and who may answer.

The commune decides whether and when an ordinary bulletin from the province
airs. `approval.required_for` names the priorities that wait, per issuer
`approval.issuers` replaces that list for one key, and `approval.approvers`
names the keys whose signed `approve`/`decline` count over MQTT. Emergencies
never wait, nor do the technician's own `say`/`play`. The answer itself is
kept in the store (`Ledger.approve`, `Ledger.decline`); this module is only
the policy.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from loaxa.config import ApprovalSettings
from loaxa.states import Priority

LOCAL_ISSUER = "local"  # the technician's own `say` and `play`: never waits
TECHNICIAN = "the technician at the station"  # who answered, in receipts, when it was `loaxa approve`/`decline`


class ApprovalPolicy:
    """Who needs the commune's answer, who may give it, and how long a bulletin waits for it."""

    def __init__(self, settings: ApprovalSettings) -> None:
        self.settings = settings

    def needs(self, issuer: str, priority: Priority) -> bool:
        """Whether a bulletin of `priority` from `issuer` waits for approval."""
        if priority is Priority.EMERGENCY or issuer == LOCAL_ISSUER:
            return False
        return Priority(priority) in self.settings.issuers.get(issuer, self.settings.required_for)

    def refusal(self, approver: str) -> str | None:
        """Why an approve/decline over MQTT from `approver` (a key id, "" unsigned) does not count; None if it does."""
        if not approver:
            return "an approval must be signed with a key listed in approval.approvers"
        if approver not in self.settings.approvers:
            return f"key {approver!r} may not approve or decline bulletins here (not in approval.approvers)"
        return None

    def deadline(self, received: datetime, expires: datetime | None) -> datetime:
        """When a bulletin still unanswered expires: its own `expires`, or after `approval.max_wait_h`."""
        longest = received + timedelta(hours=self.settings.max_wait_h)
        return longest if expires is None else min(expires, longest)
