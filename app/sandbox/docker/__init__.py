"""The Docker backend: everything that knows Docker's API, stream format and image build.

Nothing outside this package imports ``docker``; the rest of the service talks to it through
the engine-neutral protocols in ``app.sandbox.interface``.
"""
