#!/usr/bin/env bash
# Installs what the tests drive (real clients, servers and system tools) on
# Debian: the one list, for `make test` and .ci/run alike. As root with
# apt-get it installs what is missing and fails if that fails; otherwise it
# names what is missing and exits 0, and the tests that need it skip with
# a message.
set -euo pipefail

need=()
missing=()
# want COMMAND-OR-FILE PACKAGE: PACKAGE provides it. Commands are looked
# for in PATH and in the sbin directories a non-root PATH may lack.
want() {
  case $1 in
    /*) [ -e "$1" ] && return ;;
    *) command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] && return ;;
  esac
  missing+=("$1")
  need+=("$2")
}

# the echo tests use OpenBSD netcat's -N and -u; another nc on PATH will not do
want nc.openbsd netcat-openbsd
want curl curl
want python3 python3
want lftp lftp
want wget wget
# daemon tests: unit verification, real bash completion, man rendering, setpriv
want systemd-analyze systemd
want /usr/share/bash-completion/bash_completion bash-completion
want man man-db
want setpriv util-linux
# descriptor-limit tests (the runner's warning, chatload's refusal)
want prlimit util-linux
# the --syslog test binds its socket over /dev/log in a private namespace
want mount mount
# chat across instances, the metrics endpoint scraped by a real Prometheus,
# ftp-lite beside vsftpd, bcrypt password files, socket inspection
want redis-server redis-server
want prometheus prometheus
want vsftpd vsftpd
want htpasswd apache2-utils
want ss iproute2

[ ${#need[@]} -eq 0 ] && exit 0
if [ "${EUID:-$(id -u)}" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "deps: missing ${missing[*]}; as root on Debian: apt-get install -y ${need[*]}" >&2
  echo "deps: the tests that need them will skip" >&2
  exit 0
fi
echo "deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}"
