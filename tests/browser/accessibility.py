"""axe-core (bundled by axe-playwright-python) run in the page: no serious or critical violation allowed."""

from __future__ import annotations

BLOCKING = {"serious", "critical"}


def assert_accessible(page, what: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    blocking = [violation for violation in results.response["violations"] if violation.get("impact") in BLOCKING]
    report = "\n".join(f"{v['impact']}: {v['id']} ({v['help']}) at {[n['target'] for n in v['nodes']][:3]}"
                       for v in blocking)
    assert not blocking, f"{what}: accessibility violations\n{report}"
