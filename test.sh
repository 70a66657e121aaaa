#!/usr/bin/env bash
# Builds everything and runs the whole test suite. Reference data is read from ../shared/golden.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
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
