"""Data lifecycle (issue 32): retention purges, personal data exports and erasure.

It reaches into every app that stores something of a user (accounts, agents, assistant, connections,
orgproxy, usage, audit) and nothing imports it but config's entry points (urls): the top floor.
- purge.py: what retention deletes (`manage.py purge_expired`, and serving processes once a day);
- export.py: a user's data as a zip built off the request thread, downloaded by its owner;
- erase.py: a user's erasure, everywhere (their Claire sessions at Claire, files, audit rows anonymized).
"""
