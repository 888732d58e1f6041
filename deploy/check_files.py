"""Check the container file and the compose file as their tools read them:
parsed, and what they promise kept (a Debian slim base, a user that is not
root, a health check; every service's image and files present)."""

import io
import os
import sys

import yaml
from dockerfile_parse import DockerfileParser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
problems = []

with open(os.path.join(ROOT, "deploy/container/Containerfile"), "rb") as f:
    parser = DockerfileParser(fileobj=io.BytesIO(f.read()))
instructions = parser.structure
# The images are build arguments with defaults (ARG before the first FROM).
defaults = {}
for ins in instructions:
    if ins["instruction"] == "FROM":
        break
    if ins["instruction"] == "ARG" and "=" in ins["value"]:
        name, value = ins["value"].split("=", 1)
        defaults[name.strip()] = value.strip()


def resolved(text):
    for name, value in defaults.items():
        text = text.replace("${" + name + "}", value).replace("$" + name, value)
    return text


final = max(i for i, ins in enumerate(instructions) if ins["instruction"] == "FROM")
runtime = instructions[final:]
base = resolved(runtime[0]["value"].split()[0])
if "debian" not in base or "slim" not in base:
    problems.append(f"the image runs on {base}, not Debian slim")
users = [ins["value"] for ins in runtime if ins["instruction"] == "USER"]
if not users or users[-1].split(":")[0] in ("root", "0"):
    problems.append("the image runs as root")
if not any(ins["instruction"] == "HEALTHCHECK" for ins in runtime):
    problems.append("the image has no health check")
installed = " ".join(ins["value"] for ins in runtime if ins["instruction"] == "RUN")
for package in ("chromium", "libtesseract5", "tesseract-ocr-eng", "tesseract-ocr-osd", "poppler-utils"):
    if package not in installed:
        problems.append(f"the image does not install {package}")
# What the build stage copies comes from the repository; the prebuilt
# stage's context is a folder holding only a clerk built beforehand.
stage = None
for ins in instructions:
    if ins["instruction"] == "FROM":
        words = ins["value"].split()
        stage = words[2] if len(words) == 3 and words[1].lower() == "as" else None
    if ins["instruction"] == "COPY" and "--from" not in ins["value"] and stage != "prebuilt":
        for source in ins["value"].split()[:-1]:
            if not os.path.exists(os.path.join(ROOT, source)):
                problems.append(f"COPY {source}: not in the repository")

with open(os.path.join(ROOT, "deploy/compose.yaml")) as f:
    compose = yaml.safe_load(f)
services = compose.get("services", {})
for name in ("postgres", "serve", "worker"):
    if name not in services:
        problems.append(f"compose.yaml has no {name} service")
for name, service in services.items():
    if "image" not in service and "build" not in service:
        problems.append(f"compose service {name} has neither image nor build")
    build = service.get("build")
    if build:
        context = os.path.join(ROOT, "deploy", build["context"])
        if not os.path.exists(os.path.join(context, build["dockerfile"])):
            problems.append(f"compose service {name} builds from a missing {build['dockerfile']}")
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            if not os.path.exists(os.path.join(ROOT, "deploy", source)):
                problems.append(f"compose service {name} mounts a missing {source}")
        elif source not in compose.get("volumes", {}):
            problems.append(f"compose service {name} mounts an undeclared volume {source}")
    for secret in service.get("secrets", []):
        if secret not in compose.get("secrets", {}):
            problems.append(f"compose service {name} uses an undeclared secret {secret}")

for p in problems:
    print(f"deploy/check: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
