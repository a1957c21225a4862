"""The JS client's generated files, read as files (the node tests are tests/functional/test_js_client.py)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from chalicelib.domain import schema
from chalicelib.domain.typefilter import FILTERABLE

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "js"


def test_the_typescript_types_were_generated_from_the_committed_schema():
    """A change to an event (make schema) without make types leaves clients/js/src/events.d.ts
    describing the old events: its header records the schema it was made from."""
    types = (CLIENT / "src" / "events.d.ts").read_text()
    found = re.search(r"^// schema sha256: ([0-9a-f]{64})$", types, re.M)
    assert found, "clients/js/src/events.d.ts has no schema digest: run make types"
    digest = hashlib.sha256((ROOT / schema.SCHEMA_PATH).read_bytes()).hexdigest()
    assert found.group(1) == digest, "clients/js/src/events.d.ts is stale: run make types (after make schema)"


def test_the_client_knows_every_event_type_the_server_sends():
    """EVENT_TYPES (clients/js/src/events.js) lists every stored type, so a watcher listens for it."""
    text = (CLIENT / "src" / "events.js").read_text()
    listed = re.search(r"EVENT_TYPES = Object\.freeze\(\[(.*?)\]\)", text, re.S)
    assert listed is not None
    known = set(re.findall(r"'([a-z.]+)'", listed.group(1)))
    assert set(FILTERABLE) <= known, set(FILTERABLE) - known


def test_the_monitor_and_the_example_load_the_client_package_and_no_copy_of_the_loop():
    assert not (ROOT / "monitor" / "watch.js").exists()
    assert '<script src="dagcast-client.js" defer></script>' in (ROOT / "monitor" / "index.html").read_text()
    assert (
        '<script src="dagcast-client.js"></script>'
        in (ROOT / "examples" / "webapp" / "index.html").read_text()
    )
    for page in [ROOT / "monitor" / "stream.js", ROOT / "examples" / "webapp" / "app.js"]:
        code = [line for line in page.read_text().splitlines() if not line.lstrip().startswith("//")]
        assert not any("new EventSource" in line for line in code), page
        assert any("Dagcast.watchExecution(" in line for line in code), page
