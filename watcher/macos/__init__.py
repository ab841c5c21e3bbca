"""macOS integration: LaunchAgent, privacy (TCC) probes, Dropbox set-up, notifications.

Every module here also imports and runs on Linux (tests use fakes for launchctl and osascript);
anything that only makes sense on macOS says so instead of failing obscurely.
"""
