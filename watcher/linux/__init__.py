"""Linux integration: the ``systemd --user`` unit and the systemctl/loginctl steps around it.

Every module here imports and runs anywhere (tests use stand-in ``systemctl`` and ``loginctl``);
only running the steps needs a Linux user manager.
"""
