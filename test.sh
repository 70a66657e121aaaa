#!/usr/bin/env bash
# Builds everything and runs the whole test suite. Reference data is read from ../shared/golden.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
# Data-parallel tests run two ranks under Open MPI's mpirun (Debian openmpi-bin, libopenmpi3): install when missing.
pkgs=(openmpi-bin libopenmpi3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2 || { echo "test.sh: could not install ${missing[*]}"; exit 1; }
fi
dotnet build ClipSharp.slnx -c Release -nologo -clp:ErrorsOnly || { echo "build failed"; exit 1; }
log="$(mktemp)"
dotnet test tests/ClipSharp.Tests/ClipSharp.Tests.csproj -c Release --no-build -nologo "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# One plain closing line: "N passed, N failed, N skipped".
summary=$(grep -Eo 'Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "$log" | tail -1)
if [[ -n "$summary" ]]; then
  read -r f p s < <(echo "$summary" | grep -Eo '[0-9]+' | tr '\n' ' ')
  echo "tests: $p passed, $f failed, $s skipped"
fi
rm -f "$log"
exit "$status"
