"""The default start (`make run`): embedded PostgreSQL and in-process broker, data kept
under the data directory across restarts."""

from __future__ import annotations

from tests.support import HubProcess, LiveClient, api, create_session


async def test_embedded_postgres_keeps_sessions_and_events_across_restarts(tmp_path):
    hub = HubProcess({"HUB_DEV": "1", "DATABASE_URL": "", "REDIS_URL": "", "HUB_DATA_DIR": str(tmp_path)})
    hub.start(timeout=90)
    try:
        ready = (await api(hub, "GET", "/readyz")).json()
        assert ready["status"] == "ready"
        session_id = await create_session(hub)
        instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
        ack = await instructor.request("technique_changed", {"technique": "Box Breathing"})
        await instructor.close()
        assert (tmp_path / "postgres" / "PG_VERSION").exists()
        assert '"logger":"pgserver"' not in hub.logs()  # initdb/pg_ctl output only on failure

        hub.restart()
        record = (await api(hub, "GET", f"/api/v2/session/{session_id}")).json()
        assert record["head_seq"] == ack["data"]["seq"]
        assert record["current_technique"]["technique"] == "Box Breathing"
        again = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
        assert again.welcome["data"]["current_technique"]["technique"] == "Box Breathing"
        next_ack = await again.request("announcement", {"message": "still here"})
        assert next_ack["data"]["seq"] == ack["data"]["seq"] + 1
        await again.close()
    finally:
        hub.stop()
