#!/usr/bin/env python3
"""Install (or manage) the facedrop LaunchAgent on macOS.

    python3 install_launchagent.py [install|uninstall|status|restart] [--dry-run] [--config FILE]

The same as ``facedrop launchagent ...``; run it with the Python that has facedrop installed
(that interpreter is the one the LaunchAgent starts).
"""

from __future__ import annotations

import sys

from watcher.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0].startswith("-"):  # options only: the action is install
        argv = ["install", *argv]
    sys.exit(main(["launchagent", *argv]))
