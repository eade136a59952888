"""The province server: every station's receipts and state in one database.

settings   the YAML file, validated into frozen types
schema     the tables; migrations/ holds their Alembic history
database   engine, migrations at start, the ingest transaction
ingest     the MQTT session: a batch is PUBACKed only after it is committed
registry   the stations as their retained states describe them
bulletins  bulletins sent through the server, signed, tracked per station
tokens     API tokens (stored hashed) and the audit log
api        the HTTP API (a Starlette app of its own, for the web console too)
service    `loaxa province serve`: all of the above in one process
"""
