"""Makes the cross-check scripts run on Debian's PyTorch: installs python3-torch with apt-get when it is missing (as
bench/run.sh does for its packages; as root, or through sudo), then re-runs the calling script with /usr/bin/python3
when another interpreter (say a pyenv python3 found first on PATH) started it. Call require() before importing torch.
"""
import os, subprocess, sys

DEBIAN_PYTHON = "/usr/bin/python3"
PACKAGES = ["python3-torch"]


def _installed(package):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def require():
    missing = [p for p in PACKAGES if not _installed(p)]
    if missing:
        script = os.path.basename(sys.argv[0])
        print(f"{script}: installing {' '.join(missing)}", file=sys.stderr, flush=True)
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        # Another apt-get run (a second helper script, unattended upgrades) may hold the lock: wait for it.
        lock = ["-o", "DPkg::Lock::Timeout=600"]
        subprocess.run(sudo + ["apt-get", *lock, "update", "-qq"], check=True, env=env)
        subprocess.run(sudo + ["apt-get", *lock, "install", "-y", "-qq", *missing], check=True, env=env,
                       stdout=sys.stderr)
    if os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON):
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON, os.path.abspath(sys.argv[0]), *sys.argv[1:]])
