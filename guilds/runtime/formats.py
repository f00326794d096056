"""Message format names, defined once.

Seed 000's short names are canonical on the wire; the original system's fully
qualified names are accepted as aliases (`canonical_format`) and mean the same.
"""

from __future__ import annotations

TEXT = "text"
TEXT_FORMAT_QUALIFIED = "rustic_ai.core.ui_protocol.types.TextFormat"
FILES_WITH_TEXT = "rustic_ai.core.ui_protocol.types.FilesWithTextFormat"
GENERIC_JSON = "generic_json"
# The original system's LLM request and answer (guilds.agents.llm answers the request with the response).
CHAT_COMPLETION_REQUEST = "rustic_ai.core.guild.agent_ext.depends.llm.models.ChatCompletionRequest"
CHAT_COMPLETION_RESPONSE = "rustic_ai.core.guild.agent_ext.depends.llm.models.ChatCompletionResponse"

ERROR_MESSAGE = "rustic_ai.core.agents.commons.message_formats.ErrorMessage"

HEALTH_CHECK_REQUEST = "rustic_ai.core.guild.agent_ext.mixins.health.HealthCheckRequest"
HEARTBEAT = "rustic_ai.core.guild.agent_ext.mixins.health.Heartbeat"
AGENTS_HEALTH_REPORT = "rustic_ai.core.guild.agent_ext.mixins.health.AgentsHealthReport"
SELF_READY = "rustic_ai.core.agents.system.models.SelfReadyNotification"

PARTICIPANTS_REQUEST = "participantsRequest"
PARTICIPANTS = "Participants"
STOP_GUILD_REQUEST = "stopGuildRequest"
STOP_GUILD_RESPONSE = "rustic_ai.core.agents.system.models.StopGuildResponse"
USER_AGENT_CREATION_REQUEST = "rustic_ai.core.agents.system.models.UserAgentCreationRequest"
USER_AGENT_CREATION_RESPONSE = "rustic_ai.core.agents.system.models.UserAgentCreationResponse"
# Ours: pushed on the status topic whenever the persisted guild status changes.
GUILD_STATUS = "guildStatus"
# Ours: an external agent came, went or got busy (guilds.external.presence), on the status topic.
EXTERNAL_AGENT_STATUS = "guildsite.ExternalAgentStatus"
# A message moved to the guild's dead-letter topic (guilds.runtime.dead_letters).
DEAD_LETTER = "guildsite.DeadLetter"

_ALIASES = {
    "rustic_ai.core.agents.utils.user_proxy_agent.ParticipantListRequest": PARTICIPANTS_REQUEST,
    "rustic_ai.core.agents.utils.user_proxy_agent.ParticipantList": PARTICIPANTS,
    "rustic_ai.core.agents.system.models.StopGuildRequest": STOP_GUILD_REQUEST,
}

# Formats a user may send over the user socket (other formats get an ErrorMessage back).
# Sent on the user socket to stop a run (`{"run_id"}`); handled by the socket, never published.
CANCEL_REQUEST = "cancelRequest"
USER_FORMATS = frozenset({TEXT, TEXT_FORMAT_QUALIFIED, FILES_WITH_TEXT, GENERIC_JSON, CHAT_COMPLETION_REQUEST})
# Formats a user may send over the system socket.
SYSTEM_REQUEST_FORMATS = frozenset({PARTICIPANTS_REQUEST, STOP_GUILD_REQUEST})


def canonical_format(name: str) -> str:
    return _ALIASES.get(name, name)


def is_stop_announcement(message) -> bool:
    """The guild is stopping or stopped: no frame may go into it any more."""
    return message.format == STOP_GUILD_RESPONSE or (
        message.format == GUILD_STATUS and message.payload.get("status") == "STOPPED"
    )
