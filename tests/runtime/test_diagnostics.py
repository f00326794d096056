"""ProbeAgent is a diagnostic: a real site refuses it in specs unless GUILDSITE_DIAGNOSTIC_AGENTS is on,
and nothing it is asked to wait for lasts longer than its bound."""

from __future__ import annotations

import pytest

from guilds.agents.probe import PROBE_MAX_SECONDS, _seconds
from guilds.spec import SpecError, validate_guild_spec

PROBE_SPEC = {"name": "g", "agents": [{"name": "Probe", "class_name": "guilds.agents.probe.ProbeAgent"}]}


def test_a_site_without_diagnostics_refuses_the_probe_and_says_how_to_allow_it(settings):
    settings.GUILDSITE_DIAGNOSTIC_AGENTS = False

    with pytest.raises(SpecError) as refused:
        validate_guild_spec(PROBE_SPEC)

    assert "GUILDSITE_DIAGNOSTIC_AGENTS" in str(refused.value)


def test_with_diagnostics_on_the_probe_is_an_agent_like_any(settings):
    settings.GUILDSITE_DIAGNOSTIC_AGENTS = True
    assert validate_guild_spec(PROBE_SPEC).agents[0].name == "Probe"


@pytest.mark.parametrize(("asked", "waits"), [(3600, PROBE_MAX_SECONDS), (-5, 0.0), ("soon", 1.0), (2, 2.0)])
def test_a_probe_never_waits_past_its_bound(asked, waits):
    assert _seconds(asked, 1.0) == waits
