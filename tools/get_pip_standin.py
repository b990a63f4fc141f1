"""Stand-in for ansible-test's pip bootstrap script (get-pip.py), which it downloads from a host
that is not reachable here. ansible-test runs it inside a fresh virtualenv with pip-install
arguments: install pip with ensurepip, then run ``pip install`` with those arguments.
``make sanity`` copies this file to ~/.ansible/test/cache/get_pip_24_2.py."""

import ensurepip
import os
import subprocess
import sys

DROPPED = ("--no-setuptools", "--no-wheel")  # get-pip.py options, not pip's

# ensurepip sets PIP_CONFIG_FILE=/dev/null in this process; the real install must see the
# machine's pip configuration (index, certificates), so it gets the environment from before.
env = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
args = [arg for arg in sys.argv[1:] if arg not in DROPPED]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=env))
