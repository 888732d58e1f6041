"""Score invoice2data's and clerk's extractions against the ground truth.

Usage: compare_extract.py PDF_DIR I2D_JSON CLERK_JSON I2D_SECONDS CLERK_SECONDS
"""
import json
import sys
from pathlib import Path

FIELDS = ["issuer", "invoice_number", "date", "amount", "amount_untaxed", "vat", "currency"]
NUMERIC = {"amount", "amount_untaxed", "vat"}


def same(field, got, want):
    if got is None:
        return False
    if field in NUMERIC:
        try:
            return abs(float(got) - float(want)) < 0.005
        except (TypeError, ValueError):
            return False
    return str(got)[:10] == str(want) if field == "date" else str(got) == str(want)


def score(results, truth):
    right = total = 0
    for name, want in truth.items():
        got = results.get(name, {})
        for f in FIELDS:
            total += 1
            right += same(f, got.get(f), want[f])
    return right, total


def main():
    pdf_dir, i2d_path, clerk_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    i2d_s, clerk_s = float(sys.argv[4]), float(sys.argv[5])
    truth = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in pdf_dir.glob("*.json")}

    i2d = {}
    if i2d_path.exists():
        for row in json.loads(i2d_path.read_text(encoding="utf-8")):
            # invoice2data's JSON carries no file name; its invoice numbers are
            # unique within one copy of the fixtures, so key by those.
            for name, want in truth.items():
                if want["invoice_number"] == row.get("invoice_number") and name not in i2d:
                    i2d[name] = row
                    break
    clerk = {}
    for item in json.loads(clerk_path.read_text(encoding="utf-8")):
        fields = {k: v["value"] for k, v in item.get("fields", {}).items()}
        clerk[Path(item["file"]).stem] = fields

    n = len(truth)
    for label, results, seconds in (("invoice2data", i2d, i2d_s), ("clerk extract", clerk, clerk_s)):
        right, total = score(results, truth)
        print(f"extraction    {label:<13} {n / seconds:8.1f} invoices/s  ({seconds:.2f} s)   "
              f"fields right {right}/{total} ({100 * right / total:.1f} %)")
    print(f"extraction    clerk is {i2d_s / clerk_s:.1f}x invoice2data's throughput")


if __name__ == "__main__":
    main()
