"""LLM agents: `guilds.agents.llm.LLMAgent` answers text with a model on any OpenAI-compatible server."""

from guilds.agents.llm.agent import LLMAgent

__all__ = ["LLMAgent"]
