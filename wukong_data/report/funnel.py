"""The funnel of a build, from its manifest alone: what `wukong stats` prints after every build
and what the report and the comparison of two builds start from."""
from __future__ import annotations

SCHEMA_VERSION = 1


def funnel(manifest: dict) -> list[dict]:
    """Per stage: status, and once done rows in, kept, rejected per reason, each also as a
    fraction of the build's input rows."""
    statuses = manifest.get("stages", {})
    input_rows = statuses.get("crawl", {}).get("rows_in")
    out = []
    for stage in manifest["recipe"]["stages"]:
        status = statuses.get(stage, {})
        entry = {"stage": stage, "status": status.get("status", "pending")}
        if entry["status"] in ("failed", "interrupted"):
            entry.update(error=status.get("error"), resume=status.get("resume"))
        if entry["status"] == "done":
            entry.update({k: status[k] for k in ("rows_in", "kept", "rejected", "shards") if k in status})
            if input_rows:
                entry["kept_of_input"] = round(entry["kept"] / input_rows, 6)
                entry["rejected_of_input"] = {r: round(n / input_rows, 6) for r, n in entry["rejected"].items()}
        out.append(entry)
    return out
