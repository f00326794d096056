"""One schedules tick over 10,000 due schedules: how long claiming them and sending their firings takes, and how
long the next tick (nothing due) takes. Embedded (SQLite, the in-memory bus) and, when PostgreSQL and Redis
answer here, production (PostgreSQL's row locks, the Redis bus); each mode in a process of its own."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from typing import Any

from bench.socket_bench import RESULTS, add_service_arguments, services_answer


def measure(count: int) -> dict[str, Any]:
    os.environ.setdefault("GUILDSITE_VAR_DIR", tempfile.mkdtemp(prefix="guildsite-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["GUILDSITE_SCHEDULE_TICKER"] = "off"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("flush", "--noinput", verbosity=0)
    from django.utils import timezone

    from guilds import schedules
    from guilds.models import GuildStatus, Schedule
    from guilds.services import guild_create
    from guilds.spec import validate_guild_spec
    from guildsite.accounts.services import organization_for_development, user_get_or_create

    launcher = user_get_or_create("bench")
    organization = organization_for_development(organization_id="bench", user=launcher)
    spec = validate_guild_spec({"name": "bench", "agents": [{
        "name": "EchoAgent", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent",
        "additional_topics": ["echo_topic"], "listen_to_default_topic": False}],
        "properties": {"execution_engine": "inprocess"}})
    # RUNNING in the database, nothing running it: each firing is claimed and published, no agent answers.
    guild = guild_create(spec=spec, name="bench", launched_by=launcher, organization=organization, launch=False)
    type(guild).objects.filter(pk=guild.pk).update(status=GuildStatus.RUNNING)
    due = timezone.now().replace(second=0, microsecond=0)
    Schedule.objects.bulk_create([Schedule(guild=guild, organization=organization, cron="* * * * *",
                                           payload={"text": f"tick {n}"}, next_run_at=due) for n in range(count)],
                                 batch_size=1000)
    started = time.perf_counter()
    fired = schedules.tick(due + timedelta(seconds=1))
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    again = schedules.tick(due + timedelta(seconds=2))
    second_ms = (time.perf_counter() - started) * 1000
    return {"schedules": count, "fired": len(fired), "tick_s": round(first_s, 2),
            "per_firing_ms": round(first_s * 1000 / max(len(fired), 1), 3), "fired_again": len(again),
            "empty_tick_ms": round(second_ms, 1)}


def run_mode(name: str, env: dict[str, str], count: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.schedule_bench", "--measure", str(count)],
                          env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: {done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["mode"] = name
    return row


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # the measuring child process
    add_service_arguments(parser)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return []
    rows = [run_mode("embedded", {"DATABASE_URL": "", "REDIS_URL": ""}, args.schedules)]
    if services_answer():
        rows.append(run_mode("production", {"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url},
                             args.schedules))
    else:
        print("production mode skipped: PostgreSQL and Redis do not both answer on 127.0.0.1")
    print(f"\n{'mode':<11}{'schedules':>10}{'fired':>7}{'tick s':>8}{'ms/firing':>11}{'again':>7}{'empty tick ms':>15}")
    for row in rows:
        print(f"{row['mode']:<11}{row['schedules']:>10}{row['fired']:>7}{row['tick_s']:>8}{row['per_firing_ms']:>11}"
              f"{row['fired_again']:>7}{row['empty_tick_ms']:>15}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "schedules.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
