#!/usr/bin/env python3
"""Time commands side by side: one run of each in turn (the order reversed
every round), N rounds, so that a busy machine's drift falls on all of them
alike. Prints "NAME MEDIAN_MS" lines, in the order given.

    alternate.py ROUNDS NAME=COMMAND... (COMMAND split on spaces)

Each command runs with no stdin and its output discarded; one that fails
stops the script (exit 1)."""

import statistics
import subprocess
import sys
import time


def main() -> int:
    rounds = int(sys.argv[1])
    cmds = []
    for arg in sys.argv[2:]:
        name, _, cmd = arg.partition("=")
        cmds.append((name, cmd.split()))
    times = {name: [] for name, _ in cmds}
    for i in range(rounds):
        order = cmds if i % 2 == 0 else list(reversed(cmds))
        for name, cmd in order:
            t = time.perf_counter()
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            took = (time.perf_counter() - t) * 1000
            if r.returncode != 0:
                print(f"alternate.py: {name} failed (exit {r.returncode}): {' '.join(cmd)}",
                      file=sys.stderr)
                return 1
            times[name].append(took)
    for name, _ in cmds:
        print(f"{name} {statistics.median(times[name]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
