"""Compare clerk's browser actions (from a worker's JSON log at -v) with the
Playwright script's (its JSON output): mean milliseconds per action and per
booking. Used by benches/browser.sh."""
import json
import statistics
import sys

clerk_log, playwright_out = sys.argv[1], sys.argv[2]

# clerk: one "browser action" event per action, in order, per job.
per_action = {}
names = {}
steps = []
for line in open(clerk_log, encoding="utf-8"):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    fields = event.get("fields", {})
    if fields.get("message") == "browser action":
        index = int(fields["action"])
        per_action.setdefault(index, []).append(float(fields["took_ms"]))
        names[index] = fields["what"]
    if fields.get("message") == "step finished" and "took_ms" in fields:
        steps.append(float(fields["took_ms"]))

pw = json.load(open(playwright_out, encoding="utf-8"))
pw_action = {}
for booking in pw["actions"]:
    for index, (name, ms) in enumerate(booking, start=1):
        pw_action.setdefault(index, []).append(ms)

def mean(xs):
    return statistics.mean(xs) if xs else float("nan")

print(f"{'#':>2}  {'action':<44} {'clerk ms':>9} {'Playwright ms':>14}")
clerk_total = pw_total = 0.0
for index in sorted(per_action):
    name = names[index]
    if len(name) > 44:
        name = name[:41] + "..."
    c, p = mean(per_action[index]), mean(pw_action.get(index, []))
    clerk_total += c
    pw_total += p
    print(f"{index:>2}  {name:<44} {c:>9.1f} {p:>14.1f}")
print(f"{'':>2}  {'sum of the actions':<44} {clerk_total:>9.1f} {pw_total:>14.1f}")
if steps:
    print(f"{'':>2}  {'whole step (context, tab, actions, close)':<44} {mean(steps):>9.1f} {mean(pw['bookings']):>14.1f}")
else:
    print(f"{'':>2}  {'Playwright booking (context, page, close)':<44} {'':>9} {mean(pw['bookings']):>14.1f}")
