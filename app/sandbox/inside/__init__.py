"""Code that runs inside the sandbox, not on the server.

``bootstrap`` is compiled once by the server and sent to every sandbox (``app.sandbox.bootstrap``
does that); the server imports it only for the constants it shares with the sandbox (the record
marker and kinds) and the unit tests import it to check its pieces.
"""
