"""Which classes may run as agents, and the names they answer to.

A spec names an agent class by its qualified name. Ours live under the packages in
`settings.GUILDSITE_AGENT_PACKAGES`; the original system's paths for the same agents
are accepted as aliases so its specs and clients work unchanged. Nothing outside
those packages is imported from user input.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from django.conf import settings

# The original system's class paths for agents guildsite provides.
ALIASES: dict[str, str] = {
    "rustic_ai.core.agents.testutils.echo_agent.EchoAgent": "guilds.agents.echo.EchoAgent",
    "rustic_ai.core.agents.testutils.probe_agent.ProbeAgent": "guilds.agents.probe.ProbeAgent",
    "rustic_ai.core.agents.system.guild_manager_agent.GuildManagerAgent": "guilds.runtime.manager.GuildManagerAgent",
    "rustic_ai.core.agents.utils.user_proxy_agent.UserProxyAgent": "guilds.runtime.user_proxy.UserProxyAgent",
    # The original system's LLM agent (LiteLLM-based); ours speaks to OpenAI-compatible servers.
    "rustic_ai.litellm.agent.LiteLLMAgent": "guilds.agents.llm.LLMAgent",
}


class AgentClassError(ValueError):
    """A class name that cannot be used as an agent; the message says why."""


def canonical_class_name(name: str) -> str:
    return ALIASES.get(name, name)


def resolve_agent_class(name: str) -> type:
    """The agent class a spec names; AgentClassError saying why it cannot be one. Diagnostic agents
    (ProbeAgent) only where GUILDSITE_DIAGNOSTIC_AGENTS is on (tests, benchmarks)."""
    cls = _resolved(name)
    if getattr(cls, "diagnostic", False) and not settings.GUILDSITE_DIAGNOSTIC_AGENTS:
        raise AgentClassError(f"'{name}' is a diagnostic agent, for tests and benchmarks: "
                              "it runs only where GUILDSITE_DIAGNOSTIC_AGENTS=1")
    return cls


def agent_class_or_none(name: object) -> type | None:
    """The agent class a stored spec names, or None where it names none that can run here now (a class removed
    since launch, a hand-edited row): for showing a guild, never for running one."""
    if not isinstance(name, str):
        return None
    try:
        return resolve_agent_class(name)
    except AgentClassError:
        return None


@lru_cache(maxsize=256)
def _resolved(name: str) -> type:
    from guilds.runtime.agent import Agent

    target = canonical_class_name(name.strip())
    module_path, _, class_name = target.rpartition(".")
    if not module_path or not class_name:
        raise AgentClassError(f"'{name}' is not a qualified class name (expected package.module.ClassName)")
    packages = settings.GUILDSITE_AGENT_PACKAGES
    if not any(module_path == pkg or module_path.startswith(pkg + ".") for pkg in packages):
        raise AgentClassError(
            f"'{name}' is not an agent class guildsite knows: agent classes live under {', '.join(packages)}"
            f" (or are one of the original system's names: {', '.join(sorted(ALIASES))})"
        )
    try:
        module = importlib.import_module(module_path)
    except ImportError:
        raise AgentClassError(f"'{name}': module '{module_path}' does not exist") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise AgentClassError(f"'{name}': module '{module_path}' has no class '{class_name}'")
    if not isinstance(cls, type) or not issubclass(cls, Agent) or cls is Agent:
        raise AgentClassError(f"'{name}' is not an agent class (it does not subclass guilds.runtime.agent.Agent)")
    return cls
