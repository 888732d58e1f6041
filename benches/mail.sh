#!/usr/bin/env bash
# Mailbox benchmark: messages per second taken in from a local Dovecot,
# each message with a ~100 KB PDF, by a clerk mailbox poll (documents saved,
# one job per document queued in SQLite) and by Python imaplib loops that
# fetch the same messages and save the attachments: one FETCH per message
# (the usual loop), and 50 per FETCH. Prints figures; asserts nothing.
#
#   benches/mail.sh [MESSAGES]     # default 1000
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-1000}"
. scripts/packages.sh
ensure_packages dovecot-imapd
cargo build --release --locked -q
clerk="$PWD/target/release/clerk"
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  [ -n "${serve:-}" ] && kill "$serve" 2>/dev/null && wait "$serve" 2>/dev/null
  [ -n "${dovecot:-}" ] && kill "$dovecot" 2>/dev/null && wait "$dovecot" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# A private Dovecot on a free loopback port, as the tests run it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=finance password=bench-password
mkdir -p "$work"/{run,state,home}
if [ "$(id -u)" = 0 ]; then
  internal=dovecot login=dovenull mailuser=dovecot
  chown -R dovecot:dovecot "$work/home"
else
  internal=$(id -un) login=$(id -un) mailuser=$(id -un)
fi
echo "$user:{PLAIN}$password" >"$work/passwd"
cat >"$work/dovecot.conf" <<CONF
base_dir = $work/run
state_dir = $work/state
log_path = $work/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = $internal
default_login_user = $login
first_valid_uid = 1
first_valid_gid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $work/passwd
}
userdb {
  driver = static
  args = uid=$mailuser gid=$mailuser home=$work/home/%u
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
CONF
dovecot -F -c "$work/dovecot.conf" &
dovecot=$!
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done

echo "mailbox benchmark: $count messages, each with a ~100 KB PDF, local Dovecot, $(nproc) cores"
python3 benches/mail_bench.py fill "$port" "$user" "$password" "$count"
du -sh "$work/home/$user/Maildir" | awk '{print "mailbox size: " $1}'
# The mailbox on disk before anyone reads it: clerk flushes the documents it
# saves, and must not be charged for writing out Dovecot's files too.
sync

# clerk: a bot whose mailbox trigger leaves the messages where they are, so
# every reader sees the same mailbox. One job slot: the document jobs wait
# while the poll runs, and the poll's own time is what is measured.
mkdir -p "$work/bots/bench"
cat >"$work/bots/bench/bot.toml" <<BOT
name = "bench"
secrets = ["IMAP_PASSWORD"]

[[triggers]]
kind = "mailbox"
host = "127.0.0.1"
port = $port
tls = "plain"
allow_plain = true
user = "$user"
password = "\${secret:IMAP_PASSWORD}"
every = "1h"
after = "leave"

[[steps]]
name = "take"
kind = "command"
argv = ["true"]
BOT
export IMAP_PASSWORD="$password" CLERK_DATA_DIR="$work/data" CLERK_BOTS="$work/bots"
"$clerk" serve -c 1 --poll-interval 100ms 2>"$work/serve.log" &
serve=$!
poll_bot="bench:mailbox:$user@127.0.0.1/INBOX"
"$clerk" run "$poll_bot" --wait --timeout 30m --json >"$work/run.json"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/run.json")
"$clerk" runs show "$id" --json >"$work/poll.json"

python3 benches/mail_bench.py loop "$port" "$user" "$password" "$work/py-loop" >"$work/loop.txt"
python3 benches/mail_bench.py batch "$port" "$user" "$password" "$work/py-batch" >"$work/batch.txt"

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
poll = json.load(open(f"{work}/poll.json"))
attempt = poll["attempts"][-1]
clerk_s = (attempt["finished_at"] - attempt["started_at"]) / 1000
out = poll["output"]
def py(name):
    messages, saved, seconds = open(f"{work}/{name}.txt").read().split()
    return int(messages), int(saved), float(seconds)
lm, ls, lt = py("loop")
bm, bs, bt = py("batch")
print(f"clerk mailbox poll:         {out['messages']} messages, {out['new_jobs']} jobs queued, {clerk_s:6.2f} s  {out['messages'] / clerk_s:7.1f} messages/s")
print(f"python imaplib, 1 per FETCH: {lm} messages, {ls} attachments saved, {lt:6.2f} s  {lm / lt:7.1f} messages/s  (clerk {lt / clerk_s:.1f}x)")
print(f"python imaplib, 50 per FETCH: {bm} messages, {bs} attachments saved, {bt:6.2f} s  {bm / bt:7.1f} messages/s  (clerk {bt / clerk_s:.1f}x)")
PY
