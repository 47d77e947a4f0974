#!/bin/sh
# Runs its arguments as root: unchanged when already root, through sudo otherwise (saying so),
# and with one clear line when neither is possible. Used by `npm run demo`.
#   PATHLENS_ROOT_WHY  what needs root, for the messages (default: "this command")
why=${PATHLENS_ROOT_WHY:-this command}
if [ "$(id -u)" = 0 ]; then exec "$@"; fi
if command -v sudo >/dev/null 2>&1; then
  echo "pathlens: $why needs root; running it through sudo" >&2
  exec sudo -- "$@"
fi
echo "pathlens: $why needs root, and there is no sudo here: run it as root" >&2
exit 1
