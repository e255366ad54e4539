"""Helpers for testing code built on redraft: a local OpenAI-compatible server."""

from __future__ import annotations

from redraft.testing.openai_server import ChatRequest, OpenAIServer, ServerReply, echo_handler

__all__ = ["ChatRequest", "OpenAIServer", "ServerReply", "echo_handler"]
