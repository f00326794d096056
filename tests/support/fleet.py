"""A large organisation in a few bulk inserts: guilds, their agents, runs, schedules and dead letters, as a
dashboard sees them (the dashboard's query-count test and `make bench` use it)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from guilds.models import AgentKind, AgentStatus, DeadLetter, Guild, GuildAgent, GuildStatus, Run, Schedule
from tests import factories

KINDS = ["rustic_ai.core.agents.testutils.echo_agent.EchoAgent", "guilds.agents.llm.LLMAgent",
         "guilds.agents.probe.ProbeAgent"]


def make_fleet(organization_id: str, *, admin: str, guilds: int, agents_per_guild: int, prefix: str = "fleet") -> list[Guild]:
    """`guilds` stored guilds of the organisation (RUNNING, not running here), each with its agents, two runs per
    agent (one now, one three days ago), a schedule on its first agent and a dead letter on its last."""
    factories.organization(organization_id, **{admin: "admin"})
    launcher = factories.user(admin)
    now = timezone.now()
    made = Guild.objects.bulk_create([
        Guild(name=f"{prefix}-{n:04d}", organization_id=organization_id, launched_by=launcher, status=GuildStatus.RUNNING,
              spec={"name": f"{prefix}-{n:04d}", "agents": []}) for n in range(guilds)])
    agents, runs, run_times, schedules, letters = [], [], [], [], []
    for guild in made:
        for a in range(agents_per_guild):
            agent_id = f"agent-{a}"
            agents.append(GuildAgent(guild=guild, agent_id=agent_id, name=f"Agent {a}", kind=AgentKind.BOT,
                                     class_name=KINDS[a % len(KINDS)], spec={}, status=AgentStatus.RUNNING))
            for age in (timedelta(0), timedelta(days=3)):  # today (even just after midnight), and 3 days ago
                runs.append(Run(guild=guild, agent_id=agent_id, status="succeeded", input_tokens=10, output_tokens=5,
                                cost_usd=Decimal("0.001")))
                run_times.append(now - age)
        schedules.append(Schedule(guild=guild, organization_id=organization_id, agent_id="agent-0", cron="*/5 * * * *",
                                  next_run_at=now + timedelta(minutes=5)))
        letters.append(DeadLetter(guild=guild, agent_id=f"agent-{agents_per_guild - 1}", message_id=1,
                                  message={"payload": {}}, reason="it failed", attempts=3, failed_at=now))
    GuildAgent.objects.bulk_create(agents)
    Run.objects.bulk_create(runs)
    for run, at in zip(runs, run_times, strict=True):  # created_at is auto_now_add: the ages are set afterwards
        run.created_at = at
    Run.objects.bulk_update(runs, ["created_at"], batch_size=500)
    Schedule.objects.bulk_create(schedules)
    DeadLetter.objects.bulk_create(letters)
    return made
