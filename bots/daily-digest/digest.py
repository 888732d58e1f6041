"""Step `digest`: turn the scan into a short report.

Reads the job document (with the `scan` step's output) on stdin.
"""
import json
import sys

doc = json.load(sys.stdin)
scan = doc["steps"]["scan"]
total = sum(f["bytes"] for f in scan["files"])
lines = [f"{f['name']:<32} {f['bytes']:>9} bytes" for f in scan["files"]]
json.dump(
    {
        "documents": scan["count"],
        "total_bytes": total,
        "digest": f"{scan['count']} document(s) waiting in {scan['folder']}",
        "lines": lines,
    },
    sys.stdout,
)
