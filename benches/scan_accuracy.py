"""Score `clerk extract --json` on generated scans against their ground
truth: the figures the README reports for scans.

Usage: scan_accuracy.py SCAN_DIR CLERK_JSON SECONDS

A field is "passed" when clerk gives it a confidence at or above its
minimum (0.8) and "flagged" otherwise (or missing); a document goes
"straight through" when it has no review reason. A silent error is a wrong
value that was passed; a false alarm is a document sent to review although
every value it holds is right.
"""
import json
import sys
from pathlib import Path

HEADER = ["issuer", "invoice_number", "date", "amount", "amount_untaxed", "vat", "currency"]
NUMERIC = {"amount", "amount_untaxed", "vat", "qty", "unit_price"}
THRESHOLD = 0.8
NORMAL = {"clean", "office"}


def same(field, got, want):
    if got is None:
        return False
    if field in NUMERIC:
        try:
            return abs(float(got) - float(want)) < 0.005
        except (TypeError, ValueError):
            return False
    return str(got) == str(want)


def main():
    scan_dir, clerk_json = Path(sys.argv[1]), Path(sys.argv[2])
    seconds = float(sys.argv[3])
    truth = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in scan_dir.glob("*.json")}
    results = {Path(r["file"]).stem: r for r in json.loads(clerk_json.read_text(encoding="utf-8"))}
    pages = sum(len(r.get("pages", [])) for r in results.values())
    header = {"right": 0, "total": 0}
    lines = {"right": 0, "total": 0}
    passed = {"right": 0, "total": 0}
    silent = []
    by_quality = {}
    false_alarms = 0
    for name, want in sorted(truth.items()):
        got = results.get(name, {})
        fields = got.get("fields", {})
        review = got.get("review", ["not read: " + str(got.get("error"))])
        q = by_quality.setdefault(want["quality"], {"docs": 0, "through": 0, "right_docs": 0})
        q["docs"] += 1
        all_right = True
        values = []
        for f in HEADER:
            field = fields.get(f, {})
            values.append((f, field.get("value"), want[f], field.get("confidence", 0.0)))
        rows = (fields.get("lines") or {}).get("value") or []
        lines_conf = (fields.get("lines") or {}).get("confidence", 0.0)
        rows = [r for r in rows if isinstance(r, dict)]
        used = set()
        for i, item in enumerate(want["lines"]):
            # The row with this amount, else the row at the same place: one
            # lost row does not make every row after it wrong.
            match = next((j for j, r in enumerate(rows) if j not in used and same("amount", r.get("amount"), item["amount"])), None)
            if match is None and i < len(rows) and i not in used:
                match = i
            row = rows[match] if match is not None else {}
            used.add(match)
            for col in ("description", "qty", "unit_price", "amount"):
                values.append((f"lines[{i}].{col}", row.get(col), item[col], lines_conf))
        if len(rows) != len(want["lines"]):
            all_right = False
        for label, value, expected, confidence in values:
            ok = same(label.split(".")[-1], value, expected)
            bucket = lines if label.startswith("lines[") else header
            bucket["total"] += 1
            bucket["right"] += ok
            all_right &= ok
            if value is not None and confidence >= THRESHOLD:
                passed["total"] += 1
                passed["right"] += ok
                if not ok:
                    silent.append(f"{name}: {label} = {value!r}, truth {expected!r}, confidence {confidence:.2f}")
        through = not review
        q["through"] += through
        q["right_docs"] += all_right
        if review and all_right:
            false_alarms += 1
    docs = len(truth)
    pct = lambda a, b: 100.0 * a / b if b else 0.0
    print(f"scans: {docs} documents, {pages} pages")
    for quality in ("clean", "office", "degraded", "poor"):
        if quality in by_quality:
            q = by_quality[quality]
            print(f"  {quality:<9} {q['docs']:3d} docs  straight through {q['through']:3d} ({pct(q['through'], q['docs']):5.1f} %)  all values right {q['right_docs']:3d}")
    normal = [by_quality[q] for q in NORMAL if q in by_quality]
    n_docs = sum(q["docs"] for q in normal)
    n_through = sum(q["through"] for q in normal)
    print(f"header-field accuracy     {pct(header['right'], header['total']):5.1f} % ({header['right']}/{header['total']})")
    print(f"line-item accuracy        {pct(lines['right'], lines['total']):5.1f} % ({lines['right']}/{lines['total']} values)")
    print(f"silent-error rate         {pct(len(silent), passed['total']):5.2f} % ({len(silent)} wrong values passed of {passed['total']} passed)")
    print(f"calibration               {pct(passed['right'], passed['total']):5.2f} % of values passed at confidence >= {THRESHOLD} are right")
    print(f"straight-through rate     {pct(n_through, n_docs):5.1f} % of normal-quality scans (clean, office: {n_through}/{n_docs})")
    print(f"false-alarm rate          {pct(false_alarms, docs):5.1f} % of documents sent to review with every value right ({false_alarms}/{docs})")
    print(f"seconds per page          {seconds / pages:5.2f} s (clerk extract, {pages} pages)")
    for s in silent:
        print(f"  silent error: {s}")


if __name__ == "__main__":
    main()
