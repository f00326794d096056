"""External agents (seed 003): agents that run elsewhere, connect to the site, and sit in guilds like any agent.

The service layer, which every transport (the WebSocket at /ws/agents/, REST) goes through:
  registry   registering, keys, which guilds seat an agent, and the organisation check at launch
  presence   online / busy / offline, metadata, metrics, and who is told of a change
  inbox      the messages waiting for an agent (durable, acknowledged, bounded) and what it publishes
  commands   commands, their states, and their results
  signals    the site-wide wake-ups that tell a connected agent's socket to look again
"""
