"""Prints how busy the machine's cores were over SECONDS (default 2), as a percentage of all of
them, from /proc/stat: the share of time not idle and not waiting on I/O. scripts/bench calls it
between steps, while it runs nothing itself, so what it prints is other work on the machine.

Usage: busy.py [SECONDS]
"""

import sys
import time


def times():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields), idle


def busy_percent(seconds):
    total_before, idle_before = times()
    time.sleep(seconds)
    total_after, idle_after = times()
    total = total_after - total_before
    if total <= 0:
        return 0.0
    return 100.0 * (total - (idle_after - idle_before)) / total


if __name__ == "__main__":
    print(f"{busy_percent(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0):.1f}")
