#!/usr/bin/env bash
# Builds everything and runs the whole test suite. Reference data is read from ../shared/golden.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
# Debian packages the tests need, installed when missing (as root, with apt-get; never a download of anyone's own build):
# chromium drives the browser tests of clip serve; Open MPI (openmpi-bin, libopenmpi3) runs the data-parallel tests'
# ranks under mpirun; iproute2 joins the two network namespaces of the two-host test; libgomp1 is the OpenMP runtime
# USearch's native library (the approximate index, Cloud.Unum.USearch) links against; python3-onnx's checker validates
# the graphs clip export onnx writes.
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
for p in openmpi-bin libopenmpi3 iproute2 libgomp1 python3-onnx; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} for the tests (apt-get)"
    { apt-get -o DPkg::Lock::Timeout=600 update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null \
      || echo "warning: apt-get install ${missing[*]} failed; the tests that need them will fail"
  else
    echo "warning: ${missing[*]} missing and this is not root: install them with apt-get, or the tests that need them fail"
  fi
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
