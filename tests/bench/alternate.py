#!/usr/bin/env python3
"""Time commands side by side: one run of each in turn (the order reversed
every round), N rounds, so that a busy machine's drift falls on all of them
alike. Prints "NAME MEDIAN_MS" lines, in the order given; with --ref REF,
also each other command against REF pair by pair: within a round the two
ran next to each other, so their ratio (and their difference) is taken
there, and the median of the per-round figures is given with its spread.

    alternate.py [--ref NAME] ROUNDS NAME=COMMAND... (COMMAND split on spaces)

The --ref lines are
    ratio NAME REF MEDIAN Q1 Q3 MIN MAX ROUNDS   (NAME's time / REF's)
    diff NAME REF MEDIAN Q1 Q3 MIN MAX ROUNDS    (NAME's - REF's, ms)

Each command is started with posix_spawn (no shell, no stdin, its output
discarded) and timed from just before the spawn to its reaping. One that
fails stops the script (exit 1).
"""

import os
import statistics
import sys
import time


def quartiles(values):
    v = sorted(values)
    if len(v) < 2:
        return v[0], v[0]
    q = statistics.quantiles(v, n=4, method="inclusive")
    return q[0], q[2]


def spread(values):
    q1, q3 = quartiles(values)
    return (statistics.median(values), q1, q3, min(values), max(values), len(values))


def run(cmd, devnull):
    fa = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, devnull, 1),
        (os.POSIX_SPAWN_DUP2, devnull, 2),
    ]
    t = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=fa)
    _, status = os.waitpid(pid, 0)
    took = (time.perf_counter() - t) * 1000
    return took, os.waitstatus_to_exitcode(status)


def main() -> int:
    args = sys.argv[1:]
    ref = None
    if args[:1] == ["--ref"]:
        ref, args = args[1], args[2:]
    rounds = int(args[0])
    cmds = []
    for arg in args[1:]:
        name, _, cmd = arg.partition("=")
        cmds.append((name, cmd.split()))
    names = [n for n, _ in cmds]
    if ref is not None and ref not in names:
        print(f"alternate.py: --ref {ref} is not one of {names}", file=sys.stderr)
        return 2
    times = {name: [] for name in names}
    devnull = os.open(os.devnull, os.O_RDWR)
    for i in range(rounds):
        order = cmds if i % 2 == 0 else list(reversed(cmds))
        for name, cmd in order:
            took, code = run(cmd, devnull)
            if code != 0:
                print(f"alternate.py: {name} failed (exit {code}): {' '.join(cmd)}",
                      file=sys.stderr)
                return 1
            times[name].append(took)
    for name in names:
        print(f"{name} {statistics.median(times[name]):.3f}")
    if ref is not None:
        for name in names:
            if name == ref:
                continue
            pairs = list(zip(times[name], times[ref]))
            for kind, values in (("ratio", [a / b for a, b in pairs]),
                                 ("diff", [a - b for a, b in pairs])):
                med, q1, q3, lo, hi, n = spread(values)
                print(f"{kind} {name} {ref} {med:.4f} {q1:.4f} {q3:.4f} {lo:.4f} {hi:.4f} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
