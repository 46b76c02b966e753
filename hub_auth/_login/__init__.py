"""The login files and the local operations on them, network-free and without pydantic.

- ``outcomes``: ``StoredToken``, ``SwitchInfo``, ``LogoutInfo`` (light dataclasses, public);
- ``store``: ``TokenStore``, the token file and ``stored_tokens`` (atomic writes, the lock);
- ``git``: the Hub's credential in git's credential helper (a subprocess);
- ``files``: list, switch and log out, shared by ``HubAuth`` and the ``hub-auth`` command;
- ``prompt``: talking to a person at a terminal.

A module imports only those above it in this list (and hub_auth's leaf modules).
"""
