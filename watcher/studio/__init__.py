"""``facedrop serve``: the studio page (Starlette on uvicorn, plain HTML and CSS, a little JS).

``auth`` holds the LAN token, session and CSRF rules; ``files`` resolves every requested path
inside the outbox; ``render`` turns status data into HTML; ``uploads`` bounds and streams a
submission; ``app`` wires the routes. State is read only through ``watcher.status`` and changed
only through ``watcher.actions`` and ``watcher.submit``, as the CLI does.
"""
