"""Read clerk's event logs with PM4Py, an independent reader, and print
what it found as JSON: events, objects and object types of the OCEL 2.0
logs (JSON and SQLite), the constraints of the standard's relational
schema the SQLite file breaks (PM4Py's OCEL 2.0 validator), how the JSON
file's shape differs from the same log written by PM4Py's own OCEL 2.0
JSON writer, and cases, events and variants of the flat CSV."""
import json
import os
import sys
import tempfile

import pandas as pd
import pm4py
from pm4py.objects.ocel.validation import ocel20_rel_validation

ocel_json, ocel_sqlite, flat_csv = sys.argv[1:4]
found = {}
for name, path, read in [
    ("json", ocel_json, pm4py.read_ocel2_json),
    ("sqlite", ocel_sqlite, pm4py.read_ocel2_sqlite),
]:
    ocel = read(path)
    found[name] = {
        "events": int(len(ocel.events)),
        "objects": int(len(ocel.objects)),
        "activities": sorted(ocel.events["ocel:activity"].unique().tolist()),
        "object_types": sorted(ocel.objects["ocel:type"].unique().tolist()),
        "relations": int(len(ocel.relations)),
    }


def shape(value, path, out):
    """Every path in a JSON document with the type found there."""
    if isinstance(value, dict):
        out.add((path, "object"))
        for key, v in value.items():
            shape(v, f"{path}.{key}", out)
    elif isinstance(value, list):
        out.add((path, "array"))
        for v in value:
            shape(v, path + "[]", out)
    else:
        out.add((path, type(value).__name__))
    return out


with open(ocel_json, encoding="utf-8") as f:
    ours = shape(json.load(f), "$", set())
with tempfile.TemporaryDirectory() as tmp:
    rewritten = os.path.join(tmp, "pm4py.json")
    pm4py.write_ocel2_json(pm4py.read_ocel2_json(ocel_json), rewritten)
    with open(rewritten, encoding="utf-8") as f:
        theirs = shape(json.load(f), "$", set())
found["json"]["only_ours"] = sorted(f"{p} ({t})" for p, t in ours - theirs)
found["json"]["only_pm4py"] = sorted(f"{p} ({t})" for p, t in theirs - ours)

_, broken = ocel20_rel_validation.apply(ocel_sqlite)
found["sqlite"]["broken_constraints"] = sorted(broken)
frame = pd.read_csv(flat_csv)
frame = pm4py.format_dataframe(frame, case_id="case_id", activity_key="activity", timestamp_key="start")
found["csv"] = {
    "cases": int(frame["case:concept:name"].nunique()),
    "events": int(len(frame)),
    "variants": int(len(pm4py.get_variants(frame))),
}
print(json.dumps(found))
