# Sourced by the project's scripts: install Debian packages that are missing.
#   ensure_packages PACKAGE...
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# A private virtualenv DIR (made if missing) with REQUIREMENTS installed;
# pip leaves pinned packages that are already there as they are.
#   ensure_venv DIR REQUIREMENTS
ensure_venv() {
  [ -x "$1/bin/python" ] || python3 -m venv "$1"
  "$1/bin/pip" install -q -r "$2"
}
