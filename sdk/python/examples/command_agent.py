"""Run `run` commands whose executable is on a short allowlist, without a shell."""

import asyncio
import logging
import os
import shlex

from guildsite_agent import Agent, Command, CommandFailed

ALLOWED = {"echo", "date", "uname", "hostname", "ls", "whoami"}
OUTPUT_CAP = 64 * 1024

agent = Agent(os.environ.get("GUILDSITE_URL", "ws://127.0.0.1:8880/ws/agents/"), os.environ["GUILDSITE_AGENT_KEY"],
              name="command-agent", version="0.1.0", capabilities=["run"])


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    kept = await stream.read(OUTPUT_CAP)
    while await stream.read(OUTPUT_CAP):  # drain the rest so the child never blocks on a full pipe
        pass
    return kept


@agent.command("run")
async def run(cmd: Command) -> dict:
    try:
        argv = shlex.split(cmd.content)
    except ValueError as exc:
        raise CommandFailed(f"bad command line: {exc}") from None
    if not argv or argv[0] not in ALLOWED:  # bare names only: "/bin/ls" is refused too
        raise CommandFailed(f"not allowed: {argv[0] if argv else ''}")
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.gather(_read_capped(proc.stdout), _read_capped(proc.stderr))
        code = await proc.wait()
    except asyncio.CancelledError:  # timeout or cancellation: don't leave the child running
        proc.kill()
        await proc.wait()
        raise
    return {"output": out.decode(errors="replace"), "exit_code": code,
            "error_message": err.decode(errors="replace") if code else ""}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent.run()
