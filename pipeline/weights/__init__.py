"""Model weights: the manifest of every file facedrop needs, download, verification and import.

``manifest`` lists the files; ``fetch`` downloads them (resume, sha256, atomic placement);
``verify`` checks a weights folder and imports files a user already has. Library code never
prints: progress and licences reach the caller through callbacks.
"""
