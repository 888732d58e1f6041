"""Step `scan`: list the files of the input folder with size and SHA-256.

Reads the job document on stdin; prints the step's output as JSON.
"""
import hashlib
import json
import os
import sys

doc = json.load(sys.stdin)
folder = doc["input"].get("folder", "inbox")
# Steps run in the bot's folder, so a relative folder is found there.
path = folder
if not os.path.isdir(path):
    print(f"folder {folder} does not exist", file=sys.stderr)
    sys.exit(1)
files = []
for name in sorted(os.listdir(path)):
    full = os.path.join(path, name)
    if os.path.isfile(full):
        with open(full, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        files.append({"name": name, "bytes": os.path.getsize(full), "sha256": digest})
json.dump({"folder": folder, "count": len(files), "files": files}, sys.stdout)
