"""The agents' message backlog: every pushed message is stored with its per-agent `seq`, so a
reconnecting client can `resume` from the last one it saw."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from commhub.store.models import AgentMessage


def since(session: Session, agent_id: int, after: int, *, not_before: datetime, limit: int) -> list[AgentMessage]:
    """The newest `limit` kept messages after seq `after`, oldest first."""
    newest = list(session.scalars(
        select(AgentMessage).where(AgentMessage.agent_id == agent_id, AgentMessage.seq > after,
                                   AgentMessage.created_at >= not_before)
        .order_by(AgentMessage.seq.desc()).limit(limit)))
    return newest[::-1]


def prune(session: Session, *, older_than: datetime, keep_per_agent: int) -> int:
    """Forget what no resume may ask for any more: older than the window, or beyond the count.

    Each agent's newest message is always kept: it carries the agent's `seq` across restarts.
    """
    newest = select(func.max(AgentMessage.id)).group_by(AgentMessage.agent_id)
    removed = (session.execute(delete(AgentMessage).where(
        AgentMessage.created_at < older_than, AgentMessage.id.not_in(newest)))).rowcount or 0
    tops = session.execute(
        select(AgentMessage.agent_id, func.max(AgentMessage.seq)).group_by(AgentMessage.agent_id))
    for agent_id, top in tops.all():
        removed += (session.execute(delete(AgentMessage).where(
            AgentMessage.agent_id == agent_id, AgentMessage.seq <= top - keep_per_agent))).rowcount or 0
    return removed
