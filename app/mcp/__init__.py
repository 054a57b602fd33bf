"""The Model Context Protocol (v3): the service's runs as tools for AI agents.

``results`` (the tools and their results, pure), ``state`` (``keep_state``: which code session
belongs to which MCP session), ``server`` (the tools on the server's own runs), ``mount``
(``/mcp`` beside the Quart app, behind the same guards) and ``bridge`` (``sce mcp``: the same
tools over stdio, forwarded to a server). Only ``bridge`` is imported by the client install.
"""
