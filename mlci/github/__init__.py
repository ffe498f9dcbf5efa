"""GitHub integration: REST client, context, sticky comment, checks and statuses, workflow files.

Only :mod:`mlci.github.client` imports ``requests``, and only when a request is made.
"""
