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
    config: list[str] = []
    if "--config" in argv:  # a global option: it goes before the command
        i = argv.index("--config")
        config, argv = argv[i:i + 2], argv[:i] + argv[i + 2:]
    if not argv or argv[0].startswith("-"):
        argv = ["install", *argv]
    sys.exit(main([*config, "launchagent", *argv]))
