"""Answer every guild message: text gets an "external echo: " prefix, other formats go back as they came."""

import logging
import os

from guildsite_agent import Agent, IncomingMessage

TEXT_FORMATS = ("text", "rustic_ai.core.ui_protocol.types.TextFormat")  # the seed's chat, and its qualified name

agent = Agent(os.environ.get("GUILDSITE_URL", "ws://127.0.0.1:8880/ws/agents/"), os.environ["GUILDSITE_AGENT_KEY"],
              name="echo-agent", version="0.1.0", capabilities=["echo"])


@agent.on_message
async def echo(msg: IncomingMessage) -> None:
    if msg.format in TEXT_FORMATS:
        await msg.reply({"text": f"external echo: {msg.payload.get('text', '')}"})
    else:
        await msg.reply(msg.payload)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent.run()
