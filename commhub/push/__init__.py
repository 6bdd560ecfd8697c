"""Pushing messages to agents: the per-agent sequence, the persisted backlog, the live sessions."""
