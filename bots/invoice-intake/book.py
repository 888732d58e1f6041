"""Step `book`: append the invoice to the ledger, once.

Checks before it acts: an invoice already in the ledger (same issuer and
invoice number) is not booked again, so a retry after a lost worker or a
timeout books nothing twice. The ledger is a CSV file, `ledger.csv` in the
bot's folder unless the job's input names another (`"ledger": "…"`).
"""
import csv
import fcntl
import json
import os
import sys

doc = json.load(sys.stdin)
values = doc["steps"]["extract"]["values"]
ledger = doc["input"].get("ledger", "ledger.csv")
fields = ["booking", "issuer", "invoice_number", "date", "amount", "currency", "job"]

with open(ledger, "a+", newline="", encoding="utf-8") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    rows = list(csv.DictReader(f))
    for row in rows:
        if row["issuer"] == values["issuer"] and row["invoice_number"] == values["invoice_number"]:
            json.dump({"booking": row["booking"], "already_booked": True}, sys.stdout)
            sys.exit(0)
    writer = csv.DictWriter(f, fieldnames=fields)
    if not rows:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            writer.writeheader()
    booking = f"B{len(rows) + 1:05d}"
    writer.writerow({
        "booking": booking,
        "issuer": values["issuer"],
        "invoice_number": values["invoice_number"],
        "date": values["date"],
        "amount": values["amount"],
        "currency": values["currency"],
        "job": doc["job"]["id"],
    })
    json.dump({"booking": booking, "already_booked": False}, sys.stdout)
