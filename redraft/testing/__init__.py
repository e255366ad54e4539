"""Helpers for testing code built on redraft: a local OpenAI-compatible server, and which
of redraft's roles sent a request to it."""

from __future__ import annotations

from redraft.testing.openai_server import (
    ChatRequest,
    OpenAIServer,
    ServerReply,
    echo_handler,
    role_of,
)

__all__ = ["ChatRequest", "OpenAIServer", "ServerReply", "echo_handler", "role_of"]
