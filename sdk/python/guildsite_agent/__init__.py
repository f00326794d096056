"""Python SDK for guildsite external agents."""

from .client import Agent
from .models import AuthenticationRefused, Command, CommandFailed, IncomingMessage

__all__ = ["Agent", "AuthenticationRefused", "Command", "CommandFailed", "IncomingMessage"]
__version__ = "0.1.0"
