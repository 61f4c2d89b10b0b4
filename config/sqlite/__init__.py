"""Django's SQLite backend, with the process's autocommit writes taking turns (see base.py)."""
