"""Running the command as a user does: a real process, its output captured."""

import os
import subprocess
import sys


def run_cli(*args, cwd=None, env_extra=None, timeout=600):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "sss_studio", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
