"""Several machines, one inbox: ``queue.backend: redis``.

``facedrop watch`` stays the only process that reads the inbox and writes the outbox; its local
``SqliteQueue`` stays the record of every job's state. Instead of running jobs itself, its
``Dispatcher`` uploads a claimed job's files to shared storage (by sha256) and sends a Dramatiq
message carrying ids and hashes only; ``facedrop worker`` processes on any machine run them
(``FleetWorker``) and commit results under job + attempt (the first commit wins); the dispatcher
collects committed results and finishes each job through the same ``Lifecycle``.

Modules: ``broker`` (Dramatiq's Redis broker and its settings), ``ledger`` (facedrop's own
Redis keys: attempts, owners, progress, cancel flags, worker cards), ``messages`` (the message
and result manifest), ``dispatcher`` (intake side), ``runner`` (worker side), ``board`` (what
``facedrop status`` shows about workers).
"""
